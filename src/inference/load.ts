/** Loading a trained model and its tokenizer from a checkpoint for inference. */
import type { Backend } from '../kernels/backend.js';
import { Llama } from '../model/llama.js';
import { openCheckpoint } from '../io/checkpoint.js';
import { tokenizerFromRef } from '../tokenizer/ref.js';
import type { Tokenizer } from '../tokenizer/types.js';

export function loadModel(path: string, backend: Backend): { model: Llama; tokenizer: Tokenizer; dir: string; step: number } {
  const ck = openCheckpoint(path);
  const model = new Llama(ck.state.config, backend);
  ck.loadInto(model.params);
  return { model, tokenizer: tokenizerFromRef(ck.state.tokenizer, ck.dir), dir: ck.dir, step: ck.state.step };
}
