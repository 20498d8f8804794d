/** Token embedding lookup and its scatter-add backward. */
import { need, type FloatArray } from '../backend.js';

export function embeddingRef(out: FloatArray, table: FloatArray, tokens: Int32Array, dim: number): void {
  const n = tokens.length;
  need('out', out, n * dim, 'embedding');
  const vocab = Math.floor(table.length / dim);
  for (let i = 0; i < n; i++) {
    const t = tokens[i];
    if (t < 0 || t >= vocab) throw new RangeError(`embedding: token id ${t} at position ${i} is outside the vocabulary (0..${vocab - 1})`);
    out.set(table.subarray(t * dim, t * dim + dim), i * dim);
  }
}

export function embeddingBackwardRef(dtable: FloatArray, dout: FloatArray, tokens: Int32Array, dim: number): void {
  const n = tokens.length;
  need('dout', dout, n * dim, 'embeddingBackward');
  const vocab = Math.floor(dtable.length / dim);
  for (let i = 0; i < n; i++) {
    const t = tokens[i];
    if (t < 0 || t >= vocab) throw new RangeError(`embeddingBackward: token id ${t} is outside the vocabulary`);
    const o = t * dim;
    const g = i * dim;
    for (let d = 0; d < dim; d++) dtable[o + d] += dout[g + d];
  }
}
