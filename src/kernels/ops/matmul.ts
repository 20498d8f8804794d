/** Linear layer products: y = x·Wᵀ and its two backward products. Reference versions, plain loops. */
import { need, type FloatArray } from '../backend.js';

/** out[M,N] (+)= x[M,K]·w[N,K]ᵀ. Dot products over contiguous rows of x and w. */
export function matmulRef(out: FloatArray, x: FloatArray, w: FloatArray, M: number, K: number, N: number, accumulate = false): void {
  need('out', out, M * N, 'matmul');
  need('x', x, M * K, 'matmul');
  need('w', w, N * K, 'matmul');
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

/** dx[M,K] (+)= dy[M,N]·w[N,K]. */
export function matmulBackwardInputRef(dx: FloatArray, dy: FloatArray, w: FloatArray, M: number, K: number, N: number, accumulate = false): void {
  need('dx', dx, M * K, 'matmulBackwardInput');
  need('dy', dy, M * N, 'matmulBackwardInput');
  need('w', w, N * K, 'matmulBackwardInput');
  if (!accumulate) dx.fill(0, 0, M * K);
  for (let i = 0; i < M; i++) {
    const xo = i * K;
    for (let j = 0; j < N; j++) {
      const a = dy[i * N + j];
      if (a === 0) continue;
      const wo = j * K;
      for (let k = 0; k < K; k++) dx[xo + k] += a * w[wo + k];
    }
  }
}

/** dw[N,K] += dy[M,N]ᵀ·x[M,K]. */
export function matmulBackwardWeightRef(dw: FloatArray, dy: FloatArray, x: FloatArray, M: number, K: number, N: number): void {
  need('dw', dw, N * K, 'matmulBackwardWeight');
  need('dy', dy, M * N, 'matmulBackwardWeight');
  need('x', x, M * K, 'matmulBackwardWeight');
  for (let i = 0; i < M; i++) {
    const xo = i * K;
    for (let j = 0; j < N; j++) {
      const a = dy[i * N + j];
      if (a === 0) continue;
      const wo = j * K;
      for (let k = 0; k < K; k++) dw[wo + k] += a * x[xo + k];
    }
  }
}
