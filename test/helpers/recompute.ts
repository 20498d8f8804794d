/**
 * Generation by full recomputation over the context each step: the test oracle for the KV-cache decoder
 * (independent of the cache, the cached attention kernel and the decode batching).
 */
import type { Llama } from '../../src/model/llama.js';
import { sampleToken, type SamplingOptions } from '../../src/inference/sampler.js';
import { Rng } from '../../src/util/rng.js';

export function generateRecompute(model: Llama, prompt: number[], o: SamplingOptions & { maxTokens: number; seed: number }): number[] {
  const rng = new Rng(o.seed);
  const ctx = prompt.slice();
  const out: number[] = [];
  for (let i = 0; i < o.maxTokens; i++) {
    model.forward(Int32Array.from(ctx), 1, ctx.length);
    const id = sampleToken(model.logits([ctx.length - 1]), o, rng);
    ctx.push(id);
    out.push(id);
  }
  return out;
}
