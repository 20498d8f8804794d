// Native ops add, scale, sumSquares.
// Declared in src/kernels/ops/table.ts; reference src/kernels/ops/elementwise.ts; kernel native/kernels.cc.
// Tests: test/native-kernels.test.ts ('swiglu, add, scale, sumSquares', 'results do not depend on the thread count
// ...', 'shape mismatches ...').
#include "../kernels.h"
#include "../op.h"

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
