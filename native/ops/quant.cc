// Native ops matmulQ8_0, matmulQ4_0, matmulQ4K, matmulQ6K, matmulWeightBf16, matmulQ4_0x8, matmulQ8_0x8, repackQ4_0x8, repackQ8_0x8. Declared in src/kernels/ops/table.ts; reference
// src/kernels/ops/quant.ts; kernel native/quant.cc. Tests: test/quant.test.ts.
#include "../op.h"
#include "../quant.h"

using namespace lt;

static void run(Call& c, QuantKind kind) {
  long M = c.i("M"), K = c.i("K"), N = c.i("N");
  float *out = c.f("out"), *x = c.f("x");
  const uint8_t* w = c.u8("w");
  bool acc = c.flag("accumulate");
  if (!c.failed()) matmul_quant(kind, M, K, N, x, w, out, acc);
}

LT_OP(matmulQ8_0) { run(c, QK_Q8_0); }
LT_OP(matmulQ4_0) { run(c, QK_Q4_0); }
LT_OP(matmulQ4K) { run(c, QK_Q4_K); }
LT_OP(matmulQ6K) { run(c, QK_Q6_K); }
LT_OP(matmulWeightBf16) { run(c, QK_BF16); }

// Q4_0 and Q8_0 repacked 8 rows at a time (repackQ4_0x8, repackQ8_0x8), decode rows only (M < QUANT_GEMM_ROWS, checked by the table)
static void run_x8(Call& c, bool q8) {
  long M = c.i("M"), K = c.i("K"), N = c.i("N");
  float *out = c.f("out"), *x = c.f("x");
  const uint8_t* w = c.u8("w");
  bool acc = c.flag("accumulate");
  if (!c.failed()) (q8 ? matmul_q8_0x8 : matmul_q4_0x8)(M, K, N, x, w, out, acc);
}
LT_OP(matmulQ8_0x8) { run_x8(c, true); }
LT_OP(matmulQ4_0x8) { run_x8(c, false); }

// the load-time repack into that layout
static void run_repack(Call& c, bool q8) {
  long N = c.i("N"), K = c.i("K");
  const uint8_t* w = c.u8("w");
  uint8_t* out = const_cast<uint8_t*>(c.u8("out"));
  if (!c.failed()) repack_x8(q8, N, K, w, out);
}
LT_OP(repackQ8_0x8) { run_repack(c, true); }
LT_OP(repackQ4_0x8) { run_repack(c, false); }
