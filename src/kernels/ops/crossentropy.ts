/** Softmax cross-entropy over the vocabulary, fused with its gradient so logits never need a second buffer. */
import type { FloatArray } from '../backend.js';

export function crossEntropyRef(
  logits: FloatArray, targets: Int32Array, rows: number, V: number, dlogits: FloatArray | null, gradScale: number,
): number {
  let total = 0;
  for (let r = 0; r < rows; r++) {
    const o = r * V;
    const t = targets[r];
    if (t < 0) {
      if (dlogits) dlogits.fill(0, o, o + V);
      continue;
    }
    if (t >= V) throw new RangeError(`crossEntropy: target ${t} at row ${r} is outside the vocabulary (${V})`);
    let max = -Infinity;
    for (let j = 0; j < V; j++) if (logits[o + j] > max) max = logits[o + j];
    let sum = 0;
    for (let j = 0; j < V; j++) sum += Math.exp(logits[o + j] - max);
    const lse = max + Math.log(sum);
    total += lse - logits[o + t];
    if (dlogits) {
      for (let j = 0; j < V; j++) dlogits[o + j] = gradScale * Math.exp(logits[o + j] - lse);
      dlogits[o + t] -= gradScale;
    }
  }
  return total;
}
