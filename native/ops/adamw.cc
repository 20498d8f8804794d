// Native op adamw.
// Declared in src/kernels/ops/table.ts; reference src/kernels/ops/adamw.ts; kernel native/kernels.cc.
// Tests: test/native-kernels.test.ts ('adamw matches ref', 'shape mismatches ...'), test/kernels-grad.test.ts ('adamw
// matches a direct transcription of PyTorch AdamW').
#include "../kernels.h"
#include "../op.h"

using namespace lt;

LT_OP(adamw) {
  float *p = c.f("p"), *g = c.f("g"), *m = c.f("m"), *v = c.f("v");
  double lr = c.num("lr"), b1 = c.num("beta1"), b2 = c.num("beta2"), eps = c.num("eps"), wd = c.num("weightDecay"),
         step = c.num("step");
  if (!c.failed()) adamw(p, g, m, v, c.i("n"), lr, b1, b2, eps, wd, step);
}
