// Native ops toBf16, fromBf16, matmulBf16, matmulBackwardInputBf16, matmulBackwardWeightBf16, packBf16, packBf16T,
// matmulBf16Packed, matmulBackwardInputBf16Packed (--dtype bf16).
// Declared in src/kernels/ops/table.ts; reference src/kernels/ops/bf16.ts; kernel native/bgemm.cc.
// Tests: test/bf16.test.ts (every bf16 path against the ref backend).
#include <cstdint>
#include <string>

#include "../bgemm.h"
#include "../op.h"

using namespace lt;

LT_OP(toBf16) {  // out = bf16(x), round to nearest even
  long n = c.i("n");
  uint16_t* out = c.bf16("out");
  float* x = c.f("x");
  if (!c.failed()) f32_to_bf16(x, out, n);
}

LT_OP(fromBf16) {  // out = float32(x), exact
  long n = c.i("n");
  float* out = c.f("out");
  uint16_t* x = c.bf16("x");
  if (!c.failed()) bf16_to_f32(x, out, n);
}

LT_OP(matmulBf16) {  // out[M,N] (+)= x[M,K]·w[N,K]ᵀ
  long M = c.i("M"), K = c.i("K"), N = c.i("N");
  float* out = c.f("out");
  uint16_t *x = c.bf16("x"), *w = c.bf16("w");
  if (!c.failed()) bgemm(M, N, K, x, K, 1, w, 1, K, out, N, c.flag("accumulate"));
}

LT_OP(matmulBackwardInputBf16) {  // dx[M,K] (+)= dy[M,N]·w[N,K]
  long M = c.i("M"), K = c.i("K"), N = c.i("N");
  float* dx = c.f("dx");
  uint16_t *dy = c.bf16("dy"), *w = c.bf16("w");
  if (!c.failed()) bgemm(M, K, N, dy, N, 1, w, K, 1, dx, K, c.flag("accumulate"));
}

LT_OP(matmulBackwardWeightBf16) {  // dw[N,K] += dy[M,N]ᵀ·x[M,K]
  long M = c.i("M"), K = c.i("K"), N = c.i("N");
  float* dw = c.f("dw");
  uint16_t *dy = c.bf16("dy"), *x = c.bf16("x");
  if (!c.failed()) bgemm(N, K, M, dy, 1, N, x, K, 1, dw, K, true);
}

// The packed weights: bf16 bits viewed as the kernel's uint32 k-pairs, so the buffer must start on 4 bytes.
static uint32_t* packed(Call& c, const char* name) {
  uint16_t* p = c.bf16(name);
  if (p && ((uintptr_t)p & 3)) c.range_error(std::string(name) + " must start on a 4-byte boundary");
  return reinterpret_cast<uint32_t*>(p);
}

LT_OP(packBf16) {  // w[N,K] as the B operand of x·wᵀ (B[k][n] = w[n][k])
  long N = c.i("N"), K = c.i("K");
  uint32_t* out = packed(c, "out");
  uint16_t* w = c.bf16("w");
  if (!c.failed()) bf16_pack_b(w, 1, K, K, N, out);
}

LT_OP(packBf16T) {  // w[N,K] as the B operand of dy·w (B[n][k] = w[n][k])
  long N = c.i("N"), K = c.i("K");
  uint32_t* out = packed(c, "out");
  uint16_t* w = c.bf16("w");
  if (!c.failed()) bf16_pack_b(w, K, 1, N, K, out);
}

LT_OP(matmulBf16Packed) {  // out[M,N] (+)= x[M,K]·wᵀ, wp = packBf16(w)
  long M = c.i("M"), K = c.i("K"), N = c.i("N");
  float* out = c.f("out");
  uint16_t* x = c.bf16("x");
  uint32_t* wp = packed(c, "wp");
  if (!c.failed()) bgemm_packed(M, N, K, x, K, 1, wp, 1, K, out, N, c.flag("accumulate"));
}

LT_OP(matmulBackwardInputBf16Packed) {  // dx[M,K] (+)= dy[M,N]·w, wp = packBf16T(w)
  long M = c.i("M"), K = c.i("K"), N = c.i("N");
  float* dx = c.f("dx");
  uint16_t* dy = c.bf16("dy");
  uint32_t* wp = packed(c, "wp");
  if (!c.failed()) bgemm_packed(M, K, N, dy, N, 1, wp, K, 1, dx, K, c.flag("accumulate"));
}
