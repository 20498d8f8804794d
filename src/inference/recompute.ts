/** Generation by full recomputation over the context each step (simple and exact; the KV-cache path is faster). */
import type { Llama } from '../model/llama.js';
import { sampleToken, type SamplingOptions } from './sampler.js';
import { Rng } from '../util/rng.js';

export interface GenerateOptions extends SamplingOptions {
  maxTokens: number;
  seed: number;
  stopAtEos?: number;
  onToken?: (id: number) => void;
}

export function generateRecompute(model: Llama, prompt: number[], o: GenerateOptions): number[] {
  const rng = new Rng(o.seed);
  const ctx = prompt.slice();
  const out: number[] = [];
  const maxCtx = model.config.maxSeqLen;
  for (let i = 0; i < o.maxTokens; i++) {
    const window = ctx.slice(Math.max(0, ctx.length - maxCtx));
    model.forward(Int32Array.from(window), 1, window.length);
    const logits = model.logits([window.length - 1]);
    const id = sampleToken(logits, o, rng);
    if (o.stopAtEos !== undefined && id === o.stopAtEos) break;
    ctx.push(id);
    out.push(id);
    o.onToken?.(id);
  }
  return out;
}
