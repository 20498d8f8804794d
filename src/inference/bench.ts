/** Prefill and decode throughput of the KV-cache decoder (batch 1), shared by `bench generate` and bench/generate.ts. */
import type { Llama } from '../model/llama.js';
import { Decoder } from './generate.js';
import { argmax } from './sampler.js';
import { Rng } from '../util/rng.js';
import { UserError } from '../util/errors.js';

export interface GenerateSpeed {
  prefill_tokens: number;
  prefill_tokens_per_s: number;
  decode_tokens: number;
  decode_tokens_per_s: number;
}

/** Prefills `promptTokens` random tokens, then greedily decodes `decodeTokens` tokens, timing each phase. */
export function measureGenerate(model: Llama, promptTokens: number, decodeTokens: number, seed = 1): GenerateSpeed {
  const c = model.config;
  if (promptTokens < 1 || promptTokens + decodeTokens > c.maxSeqLen) {
    throw new UserError(`prompt ${promptTokens} + ${decodeTokens} decode tokens must fit the model's context of ${c.maxSeqLen}`);
  }
  const rng = new Rng(seed);
  const prompt = Array.from({ length: promptTokens }, () => rng.int(c.vocabSize));
  const dec = new Decoder(model);
  // warm-up (JIT) on a throwaway cache
  dec.prefill(dec.newCache(8), prompt.slice(0, Math.min(4, promptTokens)));
  const cache = dec.newCache();
  const t0 = performance.now();
  let logits = dec.prefill(cache, prompt);
  const t1 = performance.now();
  for (let i = 0; i < decodeTokens; i++) logits = dec.step([{ cache, tokens: [argmax(logits)] }], 'last', true)[0];
  const t2 = performance.now();
  return {
    prefill_tokens: promptTokens, prefill_tokens_per_s: promptTokens / ((t1 - t0) / 1000),
    decode_tokens: decodeTokens, decode_tokens_per_s: decodeTokens / Math.max((t2 - t1) / 1000, 1e-9),
  };
}
