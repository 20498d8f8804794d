/**
 * bfloat16 (the upper 16 bits of a float32) for `--dtype bf16`: conversions, round to nearest even as PyTorch's
 * `tensor.to(torch.bfloat16)`, and the three matmul products with bf16 inputs and float32 results. Reference versions:
 * each bf16 input is widened exactly, then the float reference product runs (every product of two bf16 values is
 * exact in float32). Native: native/ops/bf16.cc, native/bgemm.cc. A bf16 buffer is a Uint16Array of the bits.
 */
import type { FloatArray } from '../backend.js';
import { matmulRef, matmulBackwardInputRef, matmulBackwardWeightRef } from './matmul.js';

// the conversions (round to nearest even; NaN stays a quiet NaN) are util/half.ts's, shared with the file writers
export { f32ToBf16, bf16ToF32 } from '../../util/half.js';
import { f32ToBf16, bf16ToF32 } from '../../util/half.js';

/** out[i] = bf16(x[i]). */
export function toBf16Ref(out: Uint16Array, x: FloatArray, n: number): void {
  for (let i = 0; i < n; i++) out[i] = f32ToBf16(x[i]);
}

/** out[i] = float(x[i]). */
export function fromBf16Ref(out: FloatArray, x: Uint16Array, n: number): void {
  for (let i = 0; i < n; i++) out[i] = bf16ToF32(x[i]);
}

function widen(x: Uint16Array, n: number): Float64Array {
  const out = new Float64Array(n);
  fromBf16Ref(out, x, n);
  return out;
}

/** out[M,N] (+)= x[M,K]·w[N,K]ᵀ with bf16 x and w. */
export function matmulBf16Ref(out: FloatArray, x: Uint16Array, w: Uint16Array, M: number, K: number, N: number, accumulate = false): void {
  matmulRef(out, widen(x, M * K), widen(w, N * K), M, K, N, accumulate);
}

/** dx[M,K] (+)= dy[M,N]·w[N,K] with bf16 dy and w. */
export function matmulBackwardInputBf16Ref(dx: FloatArray, dy: Uint16Array, w: Uint16Array, M: number, K: number, N: number, accumulate = false): void {
  matmulBackwardInputRef(dx, widen(dy, M * N), widen(w, N * K), M, K, N, accumulate);
}

/** dw[N,K] += dy[M,N]ᵀ·x[M,K] with bf16 dy and x. */
export function matmulBackwardWeightBf16Ref(dw: FloatArray, dy: Uint16Array, x: Uint16Array, M: number, K: number, N: number): void {
  matmulBackwardWeightRef(dw, widen(dy, M * N), widen(x, M * K), M, K, N);
}
