// Native ops matmul, matmulBackwardInput, matmulBackwardWeight (and sgemm, of the addon only).
// Declared in src/kernels/ops/table.ts; reference src/kernels/ops/matmul.ts; kernel native/gemm.cc.
// Tests: test/native-kernels.test.ts ('matmul, matmulBackwardInput, matmulBackwardWeight match ref ...', 'matmul leaves
// memory outside ...', 'shape mismatches ...'), test/kernels-grad.test.ts ('matmul backward ...').
#include "../gemm.h"
#include "../op.h"

using namespace lt;

LT_OP(matmul) {  // out[M,N] (+)= x[M,K]·w[N,K]ᵀ
  long M = c.i("M"), K = c.i("K"), N = c.i("N");
  float *out = c.f("out"), *x = c.f("x"), *w = c.f("w");
  if (!c.failed()) sgemm(M, N, K, x, K, 1, w, 1, K, out, N, c.flag("accumulate"));
}

LT_OP(matmulBackwardInput) {  // dx[M,K] (+)= dy[M,N]·w[N,K]
  long M = c.i("M"), K = c.i("K"), N = c.i("N");
  float *dx = c.f("dx"), *dy = c.f("dy"), *w = c.f("w");
  if (!c.failed()) sgemm(M, K, N, dy, N, 1, w, K, 1, dx, K, c.flag("accumulate"));
}

LT_OP(matmulBackwardWeight) {  // dw[N,K] += dy[M,N]ᵀ·x[M,K]
  long M = c.i("M"), K = c.i("K"), N = c.i("N");
  float *dw = c.f("dw"), *dy = c.f("dy"), *x = c.f("x");
  if (!c.failed()) sgemm(N, K, M, dy, 1, N, x, K, 1, dw, K, true);
}

// General strided product for benchmarks: C[M,N] (+)= op(A)·op(B), A [M,K] ([K,M] when transA), B [K,N] ([N,K] when
// transB).
LT_OP(sgemm) {
  long M = c.i("M"), N = c.i("N"), K = c.i("K");
  bool ta = c.flag("transA"), tb = c.flag("transB"), acc = c.flag("accumulate");
  float *C = c.f("C"), *A = c.f("A"), *B = c.f("B");
  if (!c.failed()) sgemm(M, N, K, A, ta ? 1 : K, ta ? M : 1, B, tb ? 1 : N, tb ? K : 1, C, N, acc);
}
