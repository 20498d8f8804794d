/** Next-token sampling from a row of logits: greedy, temperature, top-k, top-p (nucleus). */
import type { Rng } from '../util/rng.js';

export interface SamplingOptions {
  /** 0 means greedy. */
  temperature: number;
  /** Keep the k most likely tokens (0 = all). */
  topK: number;
  /** Keep the smallest set whose probability reaches p (1 = all). */
  topP: number;
}

export const SAMPLING_DEFAULTS: SamplingOptions = { temperature: 0.8, topK: 0, topP: 0.95 };

export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

export function sampleToken(logits: ArrayLike<number>, o: SamplingOptions, rng: Rng): number {
  if (o.temperature <= 0) return argmax(logits);
  const V = logits.length;
  let max = -Infinity;
  for (let i = 0; i < V; i++) if (logits[i] > max) max = logits[i];
  const probs = new Float64Array(V);
  let sum = 0;
  for (let i = 0; i < V; i++) sum += probs[i] = Math.exp((logits[i] - max) / o.temperature);
  let order = Array.from({ length: V }, (_, i) => i).sort((a, b) => probs[b] - probs[a]);
  if (o.topK > 0 && o.topK < V) order = order.slice(0, o.topK);
  if (o.topP < 1) {
    let acc = 0;
    let cut = order.length;
    for (let i = 0; i < order.length; i++) {
      acc += probs[order[i]] / sum;
      if (acc >= o.topP) {
        cut = i + 1;
        break;
      }
    }
    order = order.slice(0, cut);
  }
  let kept = 0;
  for (const i of order) kept += probs[i];
  let r = rng.next() * kept;
  for (const i of order) {
    r -= probs[i];
    if (r <= 0) return i;
  }
  return order[order.length - 1];
}
