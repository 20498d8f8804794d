/** Softmax cross-entropy over the vocabulary, fused with its gradient so logits never need a second buffer. */
import type { FloatArray } from '../backend.js';

export function crossEntropyRef(
  logits: FloatArray, targets: Int32Array, rows: number, V: number, dlogits: FloatArray | null, gradScale: number,
): number {
  const lse = (o: number) => {
    const max = rowMax(logits, o, V);
    return max + Math.log(sumExp(logits, o, V, max));
  };
  return crossEntropyRows(logits, targets, rows, V, dlogits, gradScale, { lse: (_r, o) => lse(o), targetLogit: (_r, t, o) => logits[o + t], v0: 0, vocab: V });
}

/**
 * The row loop of softmax cross-entropy, shared by the reference above and the vocabulary-parallel one
 * (model/llama.ts), which differ only in where a row's log-sum-exp and its target's logit come from. `logits` holds
 * vocabulary entries [v0, v0 + V) of each row out of `vocab`. Rows with a negative target are ignored (zero loss and
 * gradient); dlogits (may alias logits) gets gradScale·(softmax − onehot) over the entries held.
 */
export function crossEntropyRows(
  logits: FloatArray, targets: Int32Array, rows: number, V: number, dlogits: FloatArray | null, gradScale: number,
  row: { lse: (r: number, o: number) => number; targetLogit: (r: number, t: number, o: number) => number; v0: number; vocab: number },
): number {
  let total = 0;
  for (let r = 0; r < rows; r++) {
    const o = r * V;
    const t = targets[r];
    if (t < 0) {
      if (dlogits) dlogits.fill(0, o, o + V);
      continue;
    }
    if (t >= row.vocab) throw new RangeError(`crossEntropy: target ${t} at row ${r} is outside the vocabulary (${row.vocab})`);
    const lse = row.lse(r, o);
    total += lse - row.targetLogit(r, t, o);
    if (dlogits) {
      softmaxRow(dlogits, logits, o, V, lse, gradScale);
      if (t >= row.v0 && t < row.v0 + V) dlogits[o + t - row.v0] -= gradScale;
    }
  }
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
