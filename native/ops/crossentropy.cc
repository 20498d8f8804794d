// Native ops crossEntropy, crossEntropyBf16, logSumExp, softmaxScaled.
// Declared in src/kernels/ops/table.ts; reference src/kernels/ops/crossentropy.ts; kernels native/kernels.cc.
// Tests: test/native-kernels.test.ts ('crossEntropy: loss, gradient ...', 'logSumExp and softmaxScaled ...',
// 'shape mismatches ...'), test/kernels-grad.test.ts ('softmax cross-entropy gradient ...', 'logSumExp gradient ...'),
// test/bf16.test.ts ('crossEntropyBf16 ...').
#include <string>

#include "../kernels.h"
#include "../op.h"

using namespace lt;

static void check_targets(Call& c, const int32_t* tg, long rows, long V) {
  for (long r = 0; r < rows && !c.failed(); r++)
    if (tg[r] >= V)
      c.range_error("target " + std::to_string(tg[r]) + " at row " + std::to_string(r) + " is outside the vocabulary (" +
                    std::to_string(V) + ")");
}

// summed loss over rows whose target is >= 0; dlogits (may be null, may alias logits) overwritten with the gradient
LT_OP_NUM(crossEntropy) {
  long rows = c.i("rows"), V = c.i("V");
  float *logits = c.f("logits"), *dl = c.f("dlogits");
  const int32_t* tg = c.i32("targets");
  double gs = c.num("gradScale");
  check_targets(c, tg, rows, V);
  return c.failed() ? 0 : cross_entropy(logits, tg, rows, V, dl, (float)gs);
}

// crossEntropy with the gradient in bfloat16 (--dtype bf16): its loss bit for bit, its gradient up to float32
// rounding, then rounded to bf16 (native/kernels.cc, cross_entropy)
LT_OP_NUM(crossEntropyBf16) {
  long rows = c.i("rows"), V = c.i("V");
  float* logits = c.f("logits");
  uint16_t* dl = c.bf16("dlogits");
  const int32_t* tg = c.i32("targets");
  double gs = c.num("gradScale");
  check_targets(c, tg, rows, V);
  return c.failed() ? 0 : cross_entropy(logits, tg, rows, V, nullptr, (float)gs, dl);
}

LT_OP(logSumExp) {
  float *out = c.f("out"), *x = c.f("x");
  long rows = c.i("rows"), V = c.i("V");
  if (!c.failed()) log_sum_exp(out, x, rows, V);
}

LT_OP(softmaxScaled) {
  float *out = c.f("out"), *x = c.f("x"), *lse = c.f("lse");
  long rows = c.i("rows"), V = c.i("V");
  double scale = c.num("scale");
  if (!c.failed()) softmax_scaled(out, x, lse, rows, V, (float)scale);
}
