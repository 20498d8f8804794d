/** Linear layer products: y = x·Wᵀ and its two backward products. Reference versions, plain loops. */
import type { FloatArray } from '../backend.js';

/** out[M,N] (+)= x[M,K]·w[N,K]ᵀ. Dot products over contiguous rows of x and w. */
export function matmulRef(out: FloatArray, x: FloatArray, w: FloatArray, M: number, K: number, N: number, accumulate = false): void {
  for (let i = 0; i < M; i++) {
    const xo = i * K;
    for (let j = 0; j < N; j++) {
      const wo = j * K;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      let k = 0;
      for (; k + 3 < K; k += 4) {
        s0 += x[xo + k] * w[wo + k];
        s1 += x[xo + k + 1] * w[wo + k + 1];
        s2 += x[xo + k + 2] * w[wo + k + 2];
        s3 += x[xo + k + 3] * w[wo + k + 3];
      }
      for (; k < K; k++) s0 += x[xo + k] * w[wo + k];
      const s = s0 + s1 + s2 + s3;
      out[i * N + j] = accumulate ? out[i * N + j] + s : s;
    }
  }
}

/**
 * For each nonzero dy[i,j] (i < M, j < N, in that order): dst row r += dy[i,j] · src row c, rows of length K, where
 * (r, c) = (i, j) when dstRowIsI, else (j, i). Both backward products of x·Wᵀ are this sum of scaled rows.
 */
function addScaledRows(dst: FloatArray, src: FloatArray, dy: FloatArray, M: number, K: number, N: number, dstRowIsI: boolean): void {
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      const a = dy[i * N + j];
      if (a === 0) continue;
      const d = (dstRowIsI ? i : j) * K;
      const s = (dstRowIsI ? j : i) * K;
      for (let k = 0; k < K; k++) dst[d + k] += a * src[s + k];
    }
  }
}

/** dx[M,K] (+)= dy[M,N]·w[N,K]. */
export function matmulBackwardInputRef(dx: FloatArray, dy: FloatArray, w: FloatArray, M: number, K: number, N: number, accumulate = false): void {
  if (!accumulate) dx.fill(0, 0, M * K);
  addScaledRows(dx, w, dy, M, K, N, true);
}

/** dw[N,K] += dy[M,N]ᵀ·x[M,K]. */
export function matmulBackwardWeightRef(dw: FloatArray, dy: FloatArray, x: FloatArray, M: number, K: number, N: number): void {
  addScaledRows(dw, x, dy, M, K, N, false);
}
