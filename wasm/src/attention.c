// Causal attention with grouped-query heads, as the reference (src/kernels/ops/attention.ts): per query row an online
// softmax over key blocks of 64 (no T×T buffer), saving the row's log-sum-exp; the backward recomputes the
// probabilities. Forward tasks are (sequence, head) pairs; backward tasks are (sequence, kv head) groups, which own
// their dk, dv rows, so no two tasks write the same element.
#include "lt.h"

#define BLK 64
#define MAX_HD 1024

static float acc_buf[LT_MAX_THREADS][MAX_HD] __attribute__((aligned(16)));

/** One query row over key/value rows 0..last (stride kw from kv): writes out[0..hd), returns the log-sum-exp. */
static float attend_row(float* out, const float* q, const float* k, const float* v, int kw, int last, int hd, float scale,
                        int tid) {
  float* acc = acc_buf[tid];
  lt_memset(acc, 0, hd * 4);
  float s[BLK];
  float m = -__builtin_inff();
  double l = 0;
  for (int j0 = 0; j0 <= last; j0 += BLK) {
    int nb = last + 1 - j0 < BLK ? last + 1 - j0 : BLK;
    float bm = -__builtin_inff();
    for (int j = 0; j < nb; j++) {
      s[j] = lt_dot(q, k + (long)(j0 + j) * kw, hd) * scale;
      if (s[j] > bm) bm = s[j];
    }
    if (bm > m) {
      float c = lt_expf(m - bm);
      if (l > 0) {
        l *= c;
        for (int d = 0; d < hd; d++) acc[d] *= c;
      }
      m = bm;
    }
    for (int j = 0; j < nb; j++) {
      float p = lt_expf(s[j] - m);
      l += p;
      lt_axpy(acc, p, v + (long)(j0 + j) * kw, hd);
    }
  }
  float inv = (float)(1.0 / l);
  for (int d = 0; d < hd; d++) out[d] = acc[d] * inv;
  return (float)(m + lt_log(l));
}

struct att {
  float *out, *lse, *dq, *dk, *dv;
  const float *q, *k, *v, *dout, *o, *lsein;
  int B, T, H, KV, hd, n, pos;
};

static void forward_task(void* ctx, int t, int tid) {
  struct att* a = ctx;
  int b = t / a->H, h = t % a->H, T = a->T, hd = a->hd, qw = a->H * hd, kw = a->KV * hd;
  int kvh = h / (a->H / a->KV);
  float scale = (float)(1.0 / __builtin_sqrt((double)hd));
  const float* kb = a->k + (long)b * T * kw + kvh * hd;
  const float* vb = a->v + (long)b * T * kw + kvh * hd;
  for (int i = 0; i < T; i++) {
    long qo = (long)(b * T + i) * qw + h * hd;
    a->lse[(long)(b * a->H + h) * T + i] = attend_row(a->out + qo, a->q + qo, kb, vb, kw, i, hd, scale, tid);
  }
}

void LT_EXPORT(lt_op_attention)(float* out, float* lse, const float* q, const float* k, const float* v, int batch, int seq,
                                int nHeads, int nKvHeads, int headDim) {
  struct att a = {.out = out, .lse = lse, .q = q, .k = k, .v = v, .B = batch, .T = seq, .H = nHeads, .KV = nKvHeads,
                  .hd = headDim};
  lt_parallel(forward_task, &a, batch * nHeads);
}

static void cached_task(void* ctx, int t, int tid) {
  struct att* a = ctx;
  int i = t / a->H, h = t % a->H, hd = a->hd, qw = a->H * hd, kw = a->KV * hd;
  int kvh = h / (a->H / a->KV);
  float scale = (float)(1.0 / __builtin_sqrt((double)hd));
  long qo = (long)i * qw + h * hd;
  attend_row(a->out + qo, a->q + qo, a->k + kvh * hd, a->v + kvh * hd, kw, a->pos + i, hd, scale, tid);
}

void LT_EXPORT(lt_op_attentionCached)(float* out, const float* q, const float* k, const float* v, int n, int pos,
                                      int nHeads, int nKvHeads, int headDim) {
  struct att a = {.out = out, .q = q, .k = k, .v = v, .H = nHeads, .KV = nKvHeads, .hd = headDim, .n = n, .pos = pos};
  lt_parallel(cached_task, &a, n * nHeads);
}

static void backward_task(void* ctx, int t, int tid) {
  (void)tid;
  struct att* a = ctx;
  int b = t / a->KV, kvh = t % a->KV, T = a->T, hd = a->hd, H = a->H, qw = H * hd, kw = a->KV * hd;
  int rep = H / a->KV;
  float scale = (float)(1.0 / __builtin_sqrt((double)hd));
  for (int j = 0; j < T; j++) {
    long ko = (long)(b * T + j) * kw + kvh * hd;
    lt_memset(a->dk + ko, 0, hd * 4);
    lt_memset(a->dv + ko, 0, hd * 4);
  }
  for (int h = kvh * rep; h < (kvh + 1) * rep; h++) {
    for (int i = 0; i < T; i++) {
      long qo = (long)(b * T + i) * qw + h * hd;
      const float* qi = a->q + qo;
      const float* gi = a->dout + qo;
      float* dqi = a->dq + qo;
      lt_memset(dqi, 0, hd * 4);
      float l = a->lsein[(long)(b * H + h) * T + i];
      float D = lt_dot(gi, a->o + qo, hd);
      for (int j = 0; j <= i; j++) {
        long ko = (long)(b * T + j) * kw + kvh * hd;
        const float* kj = a->k + ko;
        float p = lt_expf(lt_dot(qi, kj, hd) * scale - l);
        float dp = lt_dot(gi, a->v + ko, hd);
        float ds = p * (dp - D) * scale;
        lt_axpy(a->dv + ko, p, gi, hd);
        lt_axpy(dqi, ds, kj, hd);
        lt_axpy(a->dk + ko, ds, qi, hd);
      }
    }
  }
}

void LT_EXPORT(lt_op_attentionBackward)(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                                        const float* v, const float* out, const float* lse, int batch, int seq, int nHeads,
                                        int nKvHeads, int headDim) {
  struct att a = {.dq = dq, .dk = dk, .dv = dv, .dout = dout, .q = q, .k = k, .v = v, .o = out, .lsein = lse,
                  .B = batch, .T = seq, .H = nHeads, .KV = nKvHeads, .hd = headDim};
  lt_parallel(backward_task, &a, batch * nKvHeads);
}
