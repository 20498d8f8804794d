/**
 * Rotary position embedding (Su et al. 2021) in Meta's layout: adjacent pairs (x[2i], x[2i+1]) of each head
 * are rotated by position·θ^(-2i/headDim). The backward of a rotation is the rotation by the opposite angle.
 */
import type { FloatArray, RopeTable } from '../backend.js';

function rotate(x: FloatArray, batch: number, seq: number, nHeads: number, t: RopeTable, posOffset: number, sign: number): void {
  const hd = t.headDim;
  const half = hd / 2;
  const width = nHeads * hd;
  for (let b = 0; b < batch; b++) {
    for (let s = 0; s < seq; s++) {
      const p = (posOffset + s) * half;
      const row = (b * seq + s) * width;
      for (let h = 0; h < nHeads; h++) {
        const o = row + h * hd;
        for (let i = 0; i < half; i++) {
          const c = t.cos[p + i];
          const sn = sign * t.sin[p + i];
          const x0 = x[o + 2 * i];
          const x1 = x[o + 2 * i + 1];
          x[o + 2 * i] = x0 * c - x1 * sn;
          x[o + 2 * i + 1] = x0 * sn + x1 * c;
        }
      }
    }
  }
}

export function ropeRef(x: FloatArray, batch: number, seq: number, nHeads: number, t: RopeTable, posOffset = 0): void {
  rotate(x, batch, seq, nHeads, t, posOffset, 1);
}

export function ropeBackwardRef(dx: FloatArray, batch: number, seq: number, nHeads: number, t: RopeTable, posOffset = 0): void {
  rotate(dx, batch, seq, nHeads, t, posOffset, -1);
}
