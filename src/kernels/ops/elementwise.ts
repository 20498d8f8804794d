/** Residual add, scaling and reductions over flat buffers. */
import type { FloatArray } from '../backend.js';

export function addRef(out: FloatArray, a: FloatArray, b: FloatArray, n: number): void {
  for (let i = 0; i < n; i++) out[i] = a[i] + b[i];
}

export function scaleRef(x: FloatArray, s: number, n: number): void {
  for (let i = 0; i < n; i++) x[i] *= s;
}

export function sumSquaresRef(x: FloatArray, n: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += x[i] * x[i];
  return s;
}
