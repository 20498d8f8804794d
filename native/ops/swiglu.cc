// Native ops swiglu, swigluBackward.
// Declared in src/kernels/ops/table.ts; reference src/kernels/ops/swiglu.ts; kernel native/kernels.cc.
// Tests: test/native-kernels.test.ts ('swiglu, add, scale, sumSquares', 'shape mismatches ...'),
// test/kernels-grad.test.ts ('swiglu backward').
#include "../kernels.h"
#include "../op.h"

using namespace lt;

LT_OP(swiglu) {
  float *out = c.f("out"), *a = c.f("a"), *b = c.f("b");
  if (!c.failed()) swiglu(out, a, b, c.i("n"));
}

LT_OP(swigluBackward) {
  float *da = c.f("da"), *db = c.f("db"), *dout = c.f("dout"), *a = c.f("a"), *b = c.f("b");
  if (!c.failed()) swiglu_backward(da, db, dout, a, b, c.i("n"));
}
