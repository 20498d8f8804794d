/** SwiGLU gate (Shazeer 2020): out = silu(a)·b with silu(a) = a·σ(a). a = x·W1ᵀ, b = x·W3ᵀ. */
import type { FloatArray } from '../backend.js';

export function swigluRef(out: FloatArray, a: FloatArray, b: FloatArray, n: number): void {
  for (let i = 0; i < n; i++) {
    const x = a[i];
    out[i] = (x / (1 + Math.exp(-x))) * b[i];
  }
}

/** da = dout·b·σ(a)·(1 + a·(1 − σ(a))), db = dout·silu(a). Overwrites da, db. */
export function swigluBackwardRef(da: FloatArray, db: FloatArray, dout: FloatArray, a: FloatArray, b: FloatArray, n: number): void {
  for (let i = 0; i < n; i++) {
    const x = a[i];
    const sig = 1 / (1 + Math.exp(-x));
    const g = dout[i];
    da[i] = g * b[i] * sig * (1 + x * (1 - sig));
    db[i] = g * x * sig;
  }
}
