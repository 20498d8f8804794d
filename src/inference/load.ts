/** Loading a trained model and its tokenizer from a checkpoint for inference. */
import type { Backend } from '../kernels/backend.js';
import { Llama } from '../model/llama.js';
import { openCheckpoint, type TokenizerRef } from '../training/checkpoint.js';
import { ByteTokenizer } from '../tokenizer/bytes.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { UserError } from '../util/errors.js';

export function tokenizerFor(ref: TokenizerRef, _dir: string): Tokenizer {
  if (ref.kind === 'bytes') return new ByteTokenizer();
  throw new UserError(`checkpoint uses a ${ref.kind} tokenizer, which this build cannot load`);
}

export function loadModel(path: string, backend: Backend): { model: Llama; tokenizer: Tokenizer; dir: string; step: number } {
  const ck = openCheckpoint(path);
  const model = new Llama(ck.state.config, backend);
  ck.loadInto(model.params);
  return { model, tokenizer: tokenizerFor(ck.state.tokenizer, ck.dir), dir: ck.dir, step: ck.state.step };
}
