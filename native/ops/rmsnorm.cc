// Native ops rmsnorm, rmsnormBackward.
// Declared in src/kernels/ops/table.ts; reference src/kernels/ops/rmsnorm.ts; kernel native/kernels.cc.
// Tests: test/native-kernels.test.ts ('rmsnorm forward and backward ...', 'shape mismatches ...'),
// test/kernels-grad.test.ts ('rmsnorm backward').
#include "../kernels.h"
#include "../op.h"

using namespace lt;

LT_OP(rmsnorm) {
  float *out = c.f("out"), *rstd = c.f("rstd"), *x = c.f("x"), *w = c.f("w");
  double eps = c.num("eps");
  if (!c.failed()) rmsnorm(out, rstd, x, w, c.i("rows"), c.i("dim"), (float)eps);
}

LT_OP(rmsnormBackward) {
  float *dx = c.f("dx"), *dw = c.f("dw"), *dout = c.f("dout"), *x = c.f("x"), *w = c.f("w"), *rstd = c.f("rstd");
  if (!c.failed()) rmsnorm_backward(dx, dw, dout, x, w, rstd, c.i("rows"), c.i("dim"));
}
