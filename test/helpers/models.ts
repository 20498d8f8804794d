/** Small models with deterministic, deliberately peaked weights for agreement tests. */
import type { LlamaConfig } from '../../src/model/config.js';
import { Llama } from '../../src/model/llama.js';
import { createRefBackend } from '../../src/kernels/ref.js';
import { Rng } from '../../src/util/rng.js';

export function peakedModel(config: LlamaConfig, seed = 3): Llama {
  const m = new Llama(config, createRefBackend('f32'));
  // larger-than-training init so that distributions are peaked and greedy decisions are not near-ties
  m.init(seed);
  const rng = new Rng(seed + 100);
  for (const t of m.layout.tensors) {
    const v = m.params.view(t);
    if (t.shape.length === 1) for (let i = 0; i < v.length; i++) v[i] = 1 + 0.1 * rng.normal();
    else for (let i = 0; i < v.length; i++) v[i] = rng.normal() / Math.sqrt(t.shape[1]) * (t.name.includes('embeddings') ? Math.sqrt(t.shape[1]) * 0.5 : 1.5);
  }
  return m;
}

