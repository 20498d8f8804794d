// Native ops rope, ropeBackward.
// Declared in src/kernels/ops/table.ts; reference src/kernels/ops/rope.ts; kernel native/kernels.cc.
// Tests: test/native-kernels.test.ts ('rope forward and backward with position offsets', 'shape mismatches ...'),
// test/kernels-grad.test.ts ('rope backward is the inverse rotation ...').
#include "../kernels.h"
#include "../op.h"

using namespace lt;

namespace {
// rotates x in place by sign·angle
void rotate(Call& c, double sign) {
  float* x = c.f("x");
  const double *cos = c.f64("cos"), *sin = c.f64("sin");
  long batch = c.i("batch"), seq = c.i("seq"), nHeads = c.i("nHeads"), hd = c.i("headDim"), pos = c.i("posOffset");
  if (!c.failed()) rope(x, batch, seq, nHeads, hd, cos, sin, pos, sign);
}
}  // namespace

LT_OP(rope) { rotate(c, 1.0); }
LT_OP(ropeBackward) { rotate(c, -1.0); }
