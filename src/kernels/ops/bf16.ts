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

// ---- weights packed once (packBf16, packBf16T): the layout native/bgemm.h describes (bf16_pack_b)

/** Columns of the panels packBf16 and packBf16T lay out. */
const PANEL = 32;

/**
 * B [Kd, Nd] (B(k, j)) as panels of 32 columns: in panel p, the k-pair q of column c is the two values at
 * out[2·((p·⌈Kd/2⌉ + q)·32 + c)] (B(2q, j)) and the next one (B(2q+1, j)), j = 32p + c; zeros past Kd and Nd.
 */
function packPanels(out: Uint16Array, b: (k: number, j: number) => number, Kd: number, Nd: number): void {
  const kpt = Math.ceil(Kd / 2);
  for (let p = 0; p * PANEL < Nd; p++) {
    for (let q = 0; q < kpt; q++) {
      for (let c = 0; c < PANEL; c++) {
        const j = p * PANEL + c, at = 2 * ((p * kpt + q) * PANEL + c);
        out[at] = j < Nd ? b(2 * q, j) : 0;
        out[at + 1] = j < Nd && 2 * q + 1 < Kd ? b(2 * q + 1, j) : 0;
      }
    }
  }
}

/** The value B(k, j) of panels packed by packPanels. */
function panelAt(p: Uint16Array, Kd: number, k: number, j: number): number {
  return p[2 * ((Math.floor(j / PANEL) * Math.ceil(Kd / 2) + (k >> 1)) * PANEL + (j % PANEL)) + (k & 1)];
}

/** w [N,K] packed for matmulBf16Packed (B(k, n) = w[n][k]). */
export function packBf16Ref(out: Uint16Array, w: Uint16Array, N: number, K: number): void {
  packPanels(out, (k, n) => w[n * K + k], K, N);
}

/** w [N,K] packed for matmulBackwardInputBf16Packed (B(n, k) = w[n][k]). */
export function packBf16TRef(out: Uint16Array, w: Uint16Array, N: number, K: number): void {
  packPanels(out, (n, k) => w[n * K + k], N, K);
}

/** out[M,N] (+)= x[M,K]·wᵀ from wp = packBf16(w). */
export function matmulBf16PackedRef(out: FloatArray, x: Uint16Array, wp: Uint16Array, M: number, K: number, N: number, accumulate = false): void {
  const w = new Uint16Array(N * K);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) w[n * K + k] = panelAt(wp, K, k, n);
  matmulBf16Ref(out, x, w, M, K, N, accumulate);
}

/** dx[M,K] (+)= dy[M,N]·w from wp = packBf16T(w). */
export function matmulBackwardInputBf16PackedRef(dx: FloatArray, dy: Uint16Array, wp: Uint16Array, M: number, K: number, N: number, accumulate = false): void {
  const w = new Uint16Array(N * K);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) w[n * K + k] = panelAt(wp, N, n, k);
  matmulBackwardInputBf16Ref(dx, dy, w, M, K, N, accumulate);
}
