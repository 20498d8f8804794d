// Native ops add, scale, sumSquares.
// Declared in src/kernels/ops/table.ts; reference src/kernels/ops/elementwise.ts; kernel native/kernels.cc.
// Tests: test/native-kernels.test.ts ('swiglu, add, scale, sumSquares', 'results do not depend on the thread count
// ...', 'shape mismatches ...').
#include <cstring>

#include "../kernels.h"
#include "../op.h"
#include "../pool.h"

using namespace lt;

LT_OP(add) {
  float *out = c.f("out"), *a = c.f("a"), *b = c.f("b");
  if (!c.failed()) add(out, a, b, c.i("n"));
}

LT_OP(scale) {
  float* x = c.f("x");
  double s = c.num("s");
  if (!c.failed()) scale(x, s, c.i("n"));
}

LT_OP_NUM(sumSquares) {
  float* x = c.f("x");
  return c.failed() ? 0 : sum_squares(x, c.i("n"));
}

// dst = src, the pool's threads each copying a contiguous share (native-only op: the memory-bandwidth probe of
// src/inference/bench.ts, measureCopyBandwidth; test: test/quant.test.ts 'copy').
LT_OP(copy) {
  float *dst = c.f("dst"), *src = c.f("src");
  long n = c.i("n");
  if (c.failed()) return;
  long parts = pool_threads(), per = (n + parts - 1) / (parts > 0 ? parts : 1);
  parallel_for(parts, [&](long t) {
    long s = t * per, e = s + per < n ? s + per : n;
    if (s < e) std::memcpy(dst + s, src + s, (e - s) * sizeof(float));
  });
}
