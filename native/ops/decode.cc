// Native op decodeLayer: one layer of a batch-1 decode step over a float32 KV cache, the ops of Llama.blockForward
// with a CachedAttention (rmsnorm, the q/k/v products, RoPE, the cache rows, attention_cached, the output product into
// the residual, rmsnorm, w1/w3, SwiGLU, w2 into the residual) run from here without returning to JavaScript between
// them. The same kernel functions the single ops call, in the same order, so the same bits. Declared in
// src/kernels/ops/table.ts; reference src/kernels/ops/decode.ts. Tests: test/native-model.test.ts.
#include <cstring>

#include "../attention.h"
#include "../gemm.h"
#include "../kernels.h"
#include "../op.h"

using namespace lt;

LT_OP(decodeLayer) {
  float *x = c.f("x"), *xn = c.f("xn"), *rstd = c.f("rstd"), *q = c.f("q"), *k = c.f("k"), *v = c.f("v"), *att = c.f("att");
  float *h1 = c.f("h1"), *h3 = c.f("h3"), *gate = c.f("gate");
  float *attnNorm = c.f("attnNorm"), *wq = c.f("wq"), *wk = c.f("wk"), *wv = c.f("wv"), *wo = c.f("wo");
  float *ffnNorm = c.f("ffnNorm"), *w1 = c.f("w1"), *w3 = c.f("w3"), *w2 = c.f("w2");
  float *kc = c.f("kc"), *vc = c.f("vc");
  const double *cos = c.f64("cos"), *sin = c.f64("sin");
  const long D = c.i("dim"), H = c.i("nHeads"), KV = c.i("nKvHeads"), hd = c.i("headDim"), F = c.i("ffn"), pos = c.i("pos");
  const float eps = (float)c.num("eps");
  if (c.failed()) return;
  const long qw = H * hd, kw = KV * hd;
  // attention block (the ops rmsnorm, matmul ×3, rope ×2, the cache rows, attentionCached, matmul accumulating)
  rmsnorm(xn, rstd, x, attnNorm, 1, D, eps);
  {  // the three products of xn in one hand-off to the pool (the same tasks and bits as three sgemm calls)
    const long n3[3] = {qw, kw, kw};
    const float* w3s[3] = {wq, wk, wv};
    float* o3[3] = {q, k, v};
    gemv_multi(3, n3, D, xn, w3s, o3);
  }
  rope(q, 1, 1, H, hd, cos, sin, pos, 1.0);
  rope(k, 1, 1, KV, hd, cos, sin, pos, 1.0);
  std::memcpy(kc + pos * kw, k, kw * sizeof(float));
  std::memcpy(vc + pos * kw, v, kw * sizeof(float));
  attention_cached(att, q, kc, vc, 1, pos, H, KV, hd);
  sgemm(1, D, qw, att, qw, 1, wo, 1, qw, x, D, true);
  // feed-forward block
  rmsnorm(xn, rstd, x, ffnNorm, 1, D, eps);
  {
    const long n2[2] = {F, F};
    const float* w2s[2] = {w1, w3};
    float* o2[2] = {h1, h3};
    gemv_multi(2, n2, D, xn, w2s, o2);
  }
  swiglu(gate, h1, h3, F);
  sgemm(1, D, F, gate, F, 1, w2, 1, F, x, D, true);
}
