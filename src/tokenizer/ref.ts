/**
 * How a checkpoint names its tokenizer, and loading it back: the byte tokenizer, a SentencePiece `.model` file
 * stored beside the weights, or a vocabulary JSON (pieces/scores/types) imported from another format.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ByteTokenizer } from './bytes.js';
import { SentencePieceModel } from './model.js';
import { tokenizerFromVocab, type TokenizerVocab } from './vocab.js';
import type { Tokenizer } from './types.js';
import { UserError } from '../util/errors.js';

export type TokenizerRef = { kind: 'bytes' } | { kind: 'sentencepiece'; file: string } | { kind: 'vocab'; file: string };

export function tokenizerFromRef(ref: TokenizerRef, dir: string): Tokenizer {
  switch (ref?.kind) {
    case 'bytes':
      return new ByteTokenizer();
    case 'sentencepiece':
      return SentencePieceModel.load(join(dir, ref.file));
    case 'vocab': {
      let v: TokenizerVocab;
      try {
        v = JSON.parse(readFileSync(join(dir, ref.file), 'utf8')) as TokenizerVocab;
      } catch (e) {
        throw new UserError(`'${dir}': tokenizer file '${ref.file}' is unreadable (${(e as Error).message})`);
      }
      return tokenizerFromVocab(v);
    }
    default:
      throw new UserError(`'${dir}': unknown tokenizer kind '${(ref as { kind?: string })?.kind}'`);
  }
}
