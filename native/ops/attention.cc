// Native ops attention, attentionBackward, attentionBf16, attentionBackwardBf16, attentionCached, attentionCachedF16.
// Declared in src/kernels/ops/table.ts; reference src/kernels/ops/attention.ts; kernels native/attention.cc and
// native/attention-bf16.cc (test/attention-bf16.test.ts).
// Tests: test/native-kernels.test.ts ('attention forward and backward match ref ...', 'attentionCached ...',
// 'attention at T=4096 ...', 'shape mismatches ...'), test/kernels-grad.test.ts ('attention is causal ...'),
// test/native-model.test.ts (KV-cache decoding).
#include <string>

#include "../attention.h"
#include "../op.h"

using namespace lt;

LT_OP(attention) {
  long B = c.i("batch"), T = c.i("seq"), H = c.i("nHeads"), KV = c.i("nKvHeads"), hd = c.i("headDim");
  float *out = c.f("out"), *lse = c.f("lse"), *q = c.f("q"), *k = c.f("k"), *v = c.f("v");
  if (!c.failed()) attention_forward(out, lse, q, k, v, B, T, H, KV, hd);
}

LT_OP(attentionBackward) {
  long B = c.i("batch"), T = c.i("seq"), H = c.i("nHeads"), KV = c.i("nKvHeads"), hd = c.i("headDim");
  float *dq = c.f("dq"), *dk = c.f("dk"), *dv = c.f("dv"), *dout = c.f("dout");
  float *q = c.f("q"), *k = c.f("k"), *v = c.f("v"), *out = c.f("out"), *lse = c.f("lse");
  if (!c.failed()) attention_backward(dq, dk, dv, dout, q, k, v, out, lse, B, T, H, KV, hd);
}

LT_OP(attentionBf16) {  // bf16 q, k, v; out and lse float32
  long B = c.i("batch"), T = c.i("seq"), H = c.i("nHeads"), KV = c.i("nKvHeads"), hd = c.i("headDim");
  float *out = c.f("out"), *lse = c.f("lse");
  uint16_t *q = c.bf16("q"), *k = c.bf16("k"), *v = c.bf16("v");
  if (!c.failed()) attention_forward_bf16(out, lse, q, k, v, B, T, H, KV, hd);
}

LT_OP(attentionBackwardBf16) {  // bf16 dout, q, k, v, out; float32 lse, dq, dk, dv
  long B = c.i("batch"), T = c.i("seq"), H = c.i("nHeads"), KV = c.i("nKvHeads"), hd = c.i("headDim");
  float *dq = c.f("dq"), *dk = c.f("dk"), *dv = c.f("dv"), *lse = c.f("lse");
  uint16_t *dout = c.bf16("dout"), *q = c.bf16("q"), *k = c.bf16("k"), *v = c.bf16("v"), *out = c.bf16("out");
  if (!c.failed()) attention_backward_bf16(dq, dk, dv, dout, q, k, v, out, lse, B, T, H, KV, hd);
}

// out[n,H,hd] = attention of q[n,H,hd] (positions pos..pos+n-1) over the cache k/v[pos+n, KV, hd]
LT_OP(attentionCached) {
  long n = c.i("n"), pos = c.i("pos"), H = c.i("nHeads"), KV = c.i("nKvHeads"), hd = c.i("headDim");
  float *out = c.f("out"), *q = c.f("q"), *k = c.f("k"), *v = c.f("v");
  if (!c.failed()) attention_cached(out, q, k, v, n, pos, H, KV, hd);
}

// the cache in IEEE half, head-major [nKvHeads, maxSeq, headDim] per layer (the table's bf16 kind is any Uint16Array)
LT_OP(attentionCachedF16) {
  long n = c.i("n"), pos = c.i("pos"), H = c.i("nHeads"), KV = c.i("nKvHeads"), hd = c.i("headDim"), maxSeq = c.i("maxSeq");
  float *out = c.f("out"), *q = c.f("q"), *k = c.f("k"), *v = c.f("v");
  uint16_t *kc = c.bf16("kc"), *vc = c.bf16("vc");
  if (!c.failed() && pos + n > maxSeq) c.range_error("pos + n = " + std::to_string(pos + n) + " exceeds the cache's " + std::to_string(maxSeq) + " positions");
  if (!c.failed()) attention_cached_f16(out, q, k, v, kc, vc, n, pos, H, KV, hd, maxSeq);
}
