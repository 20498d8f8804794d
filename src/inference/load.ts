/** Loading a trained model and its tokenizer from a checkpoint for inference. */
import type { Backend } from '../kernels/backend.js';
import { Llama } from '../model/llama.js';
import { openCheckpoint, type TokenizerRef } from '../training/checkpoint.js';
import { ByteTokenizer } from '../tokenizer/bytes.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { UserError } from '../util/errors.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SentencePieceModel } from '../tokenizer/model.js';
import { tokenizerFromVocab, type TokenizerVocab } from '../tokenizer/vocab.js';

export function tokenizerFor(ref: TokenizerRef, dir: string): Tokenizer {
  if (ref.kind === 'bytes') return new ByteTokenizer();
  if (ref.kind === 'vocab') {
    let v: TokenizerVocab;
    try {
      v = JSON.parse(readFileSync(join(dir, ref.file), 'utf8')) as TokenizerVocab;
    } catch (e) {
      throw new UserError(`checkpoint '${dir}': tokenizer file '${ref.file}' is unreadable (${(e as Error).message})`);
    }
    return tokenizerFromVocab(v);
  }
  if (ref.kind === 'sentencepiece') return SentencePieceModel.load(join(dir, ref.file));
  throw new UserError(`checkpoint uses an unknown tokenizer kind '${(ref as { kind: string }).kind}'`);
}

export function loadModel(path: string, backend: Backend): { model: Llama; tokenizer: Tokenizer; dir: string; step: number } {
  const ck = openCheckpoint(path);
  const model = new Llama(ck.state.config, backend);
  ck.loadInto(model.params);
  return { model, tokenizer: tokenizerFor(ck.state.tokenizer, ck.dir), dir: ck.dir, step: ck.state.step };
}
