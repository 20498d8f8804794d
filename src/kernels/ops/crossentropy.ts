/** Softmax cross-entropy over the vocabulary, fused with its gradient so logits never need a second buffer. */
import type { FloatArray } from '../backend.js';
import { toBf16Ref } from './bf16.js';

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
    const max = rowMax(logits, o, V);
    const lse = max + Math.log(sumExp(logits, o, V, max));
    total += lse - logits[o + t];
    if (dlogits) {
      softmaxRow(dlogits, logits, o, V, lse, gradScale);
      dlogits[o + t] -= gradScale;
    }
  }
  return total;
}

/** crossEntropyRef with dlogits rounded to bfloat16: the float gradient in a buffer like logits, then toBf16Ref. */
export function crossEntropyBf16Ref(
  logits: FloatArray, targets: Int32Array, rows: number, V: number, dlogits: Uint16Array, gradScale: number,
): number {
  for (let r = 0; r < rows; r++) {
    if (targets[r] >= V) throw new RangeError(`crossEntropyBf16: target ${targets[r]} at row ${r} is outside the vocabulary (${V})`);
  }
  const d = logits instanceof Float64Array ? new Float64Array(rows * V) : new Float32Array(rows * V);
  const total = crossEntropyRef(logits, targets, rows, V, d, gradScale);
  toBf16Ref(dlogits, d, rows * V);
  return total;
}

/** max of logits[o, o+V). */
export function rowMax(logits: FloatArray, o: number, V: number): number {
  let max = -Infinity;
  for (let j = 0; j < V; j++) if (logits[o + j] > max) max = logits[o + j];
  return max;
}

/** Σ exp(logits[o+j] − max), j < V. */
export function sumExp(logits: FloatArray, o: number, V: number, max: number): number {
  let sum = 0;
  for (let j = 0; j < V; j++) sum += Math.exp(logits[o + j] - max);
  return sum;
}

/** out[o+j] = scale · softmax_j = scale · exp(logits[o+j] − lse), j < V (out may be logits). */
export function softmaxRow(out: FloatArray, logits: FloatArray, o: number, V: number, lse: number, scale: number): void {
  for (let j = 0; j < V; j++) out[o + j] = scale * Math.exp(logits[o + j] - lse);
}

export function logSumExpRef(out: FloatArray, x: FloatArray, rows: number, V: number): void {
  for (let r = 0; r < rows; r++) {
    const max = rowMax(x, r * V, V);
    out[r] = max + Math.log(sumExp(x, r * V, V, max));
  }
}

export function softmaxScaledRef(out: FloatArray, x: FloatArray, lse: FloatArray, rows: number, V: number, scale: number): void {
  for (let r = 0; r < rows; r++) softmaxRow(out, x, r * V, V, lse[r], scale);
}
