/** Index of the first NaN or ±Infinity in `a`, or -1: one plain pass (util/mmap.ts has the native one, for Node). */
export function firstNonFiniteJs(a: Float32Array): number {
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    if (x - x !== 0) return i;
  }
  return -1;
}
