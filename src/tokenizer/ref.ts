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
import { UserError, quoteJson } from '../util/errors.js';

export type TokenizerRef = { kind: 'bytes' } | { kind: 'sentencepiece'; file: string } | { kind: 'vocab'; file: string };

/** Throws a one-line UserError unless `ref` (state.json's `tokenizer`) is well formed: a known kind, a plain file name. */
export function checkTokenizerRef(ref: unknown, where: string): asserts ref is TokenizerRef {
  const r = ref as { kind?: unknown; file?: unknown } | null;
  if (typeof r !== 'object' || r === null || Array.isArray(r)) throw new UserError(`${where}: 'tokenizer' must be an object, got ${quoteJson(ref)}`);
  if (r.kind === 'bytes') return;
  if (r.kind !== 'sentencepiece' && r.kind !== 'vocab') throw new UserError(`${where}: unknown tokenizer kind ${quoteJson(r.kind)}`);
  const f = r.file;
  if (typeof f !== 'string' || f === '' || f === '.' || f === '..' || /[/\\\0]/.test(f)) {
    throw new UserError(`${where}: 'tokenizer.file' must be a file name beside it, got ${quoteJson(f)}`);
  }
}

export function tokenizerFromRef(ref: TokenizerRef, dir: string): Tokenizer {
  checkTokenizerRef(ref, `'${join(dir, 'state.json')}'`);
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
