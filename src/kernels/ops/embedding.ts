/** Token embedding lookup and its scatter-add backward. */
import type { FloatArray } from '../backend.js';

/** Throws unless every token indexes a row of a [vocab, dim] table of `tableLength` elements. */
function checkTokens(tokens: Int32Array, tableLength: number, dim: number, op: string): void {
  const vocab = Math.floor(tableLength / dim);
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (t < 0 || t >= vocab) throw new RangeError(`${op}: token id ${t} at position ${i} is outside the vocabulary (0..${vocab - 1})`);
  }
}

export function embeddingRef(out: FloatArray, table: FloatArray, tokens: Int32Array, dim: number): void {
  checkTokens(tokens, table.length, dim, 'embedding');
  for (let i = 0; i < tokens.length; i++) out.set(table.subarray(tokens[i] * dim, tokens[i] * dim + dim), i * dim);
}

export function embeddingBackwardRef(dtable: FloatArray, dout: FloatArray, tokens: Int32Array, dim: number): void {
  checkTokens(tokens, dtable.length, dim, 'embeddingBackward');
  for (let i = 0; i < tokens.length; i++) {
    const o = tokens[i] * dim;
    const g = i * dim;
    for (let d = 0; d < dim; d++) dtable[o + d] += dout[g + d];
  }
}
