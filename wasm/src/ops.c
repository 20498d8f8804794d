// The op entries of the op table (src/kernels/ops/table.ts) that are not matmul or attention: one exported function
// per op, `lt_op_<name>`, taking the table's arguments in order (buffers as pointers, a buffer whose length binds a
// size followed by that size, the fields of an object argument inline). src/kernels/wasm.ts checks every call against
// the table before it gets here. References: src/kernels/ops/*.ts; tests: test/wasm-kernels.test.ts.
#include "lt.h"

#define CHUNK 16384  // elements per task of the elementwise ops (a fixed size: results do not depend on threads)

static int chunks(long n) { return (int)((n + CHUNK - 1) / CHUNK); }

// ---- matmul (references: ops/matmul.ts) ----

void LT_EXPORT(lt_op_matmul)(float* out, const float* x, const float* w, int M, int K, int N, int accumulate) {
  lt_sgemm(M, N, K, x, K, 0, w, K, 1, out, N, accumulate);
}

void LT_EXPORT(lt_op_matmulBackwardInput)(float* dx, const float* dy, const float* w, int M, int K, int N, int accumulate) {
  lt_sgemm(M, K, N, dy, N, 0, w, K, 0, dx, K, accumulate);
}

void LT_EXPORT(lt_op_matmulBackwardWeight)(float* dw, const float* dy, const float* x, int M, int K, int N) {
  lt_sgemm(N, K, M, dy, N, 1, x, K, 0, dw, K, 1);
}

void LT_EXPORT(lt_op_sgemm)(float* C, const float* A, const float* B, int M, int N, int K, int transA, int transB,
                            int accumulate) {
  lt_sgemm(M, N, K, A, transA ? M : K, transA, B, transB ? K : N, transB, C, N, accumulate);
}

// ---- embedding (ops/embedding.ts; token ids are checked by the binding) ----

void LT_EXPORT(lt_op_embedding)(float* out, const float* table, const int32_t* tokens, int n, int dim) {
  for (int i = 0; i < n; i++) lt_memcpy(out + (long)i * dim, table + (long)tokens[i] * dim, (long)dim * 4);
}

void LT_EXPORT(lt_op_embeddingBackward)(float* dtable, const float* dout, const int32_t* tokens, int n, int dim) {
  for (int i = 0; i < n; i++) {
    float* d = dtable + (long)tokens[i] * dim;
    const float* g = dout + (long)i * dim;
    for (int k = 0; k < dim; k++) d[k] += g[k];
  }
}

// ---- rmsnorm (ops/rmsnorm.ts): rows in parallel; the backward's dw by column ranges ----

struct norm {
  float *out, *rstd, *dx, *dw;
  const float *x, *w, *dout, *rs;
  int rows, dim;
  double eps;
};

static void rmsnorm_task(void* ctx, int r, int tid) {
  (void)tid;
  struct norm* a = ctx;
  const float* x = a->x + (long)r * a->dim;
  float* o = a->out + (long)r * a->dim;
  double ss = 0;
  for (int d = 0; d < a->dim; d++) ss += (double)x[d] * x[d];
  double s = 1 / __builtin_sqrt(ss / a->dim + a->eps);
  a->rstd[r] = (float)s;
  for (int d = 0; d < a->dim; d++) o[d] = (float)(x[d] * s * a->w[d]);
}

void LT_EXPORT(lt_op_rmsnorm)(float* out, float* rstd, const float* x, const float* w, int rows, int dim, double eps) {
  struct norm a = {.out = out, .rstd = rstd, .x = x, .w = w, .rows = rows, .dim = dim, .eps = eps};
  lt_parallel(rmsnorm_task, &a, rows);
}

static void rmsnorm_dx_task(void* ctx, int r, int tid) {
  (void)tid;
  struct norm* a = ctx;
  long o = (long)r * a->dim;
  double s = a->rs[r], dot = 0;
  for (int d = 0; d < a->dim; d++) dot += (double)a->dout[o + d] * a->w[d] * a->x[o + d] * s;
  double mean = dot / a->dim;
  for (int d = 0; d < a->dim; d++) {
    double xh = a->x[o + d] * s;
    a->dx[o + d] = (float)(a->dx[o + d] + s * ((double)a->dout[o + d] * a->w[d] - xh * mean));
  }
}

#define DW_COLS 64

static void rmsnorm_dw_task(void* ctx, int t, int tid) {
  (void)tid;
  struct norm* a = ctx;
  int d0 = t * DW_COLS, d1 = d0 + DW_COLS < a->dim ? d0 + DW_COLS : a->dim;
  for (int r = 0; r < a->rows; r++) {
    long o = (long)r * a->dim;
    double s = a->rs[r];
    for (int d = d0; d < d1; d++) a->dw[d] = (float)(a->dw[d] + (double)a->dout[o + d] * (a->x[o + d] * s));
  }
}

void LT_EXPORT(lt_op_rmsnormBackward)(float* dx, float* dw, const float* dout, const float* x, const float* w,
                                      const float* rstd, int rows, int dim) {
  struct norm a = {.dx = dx, .dw = dw, .dout = dout, .x = x, .w = w, .rs = rstd, .rows = rows, .dim = dim};
  lt_parallel(rmsnorm_dx_task, &a, rows);
  lt_parallel(rmsnorm_dw_task, &a, (dim + DW_COLS - 1) / DW_COLS);
}

// ---- rope (ops/rope.ts): rotation of adjacent pairs, in double as the reference ----

static void rotate(float* x, int batch, int seq, int nHeads, const double* cs, const double* sn, int hd, int pos,
                   double sign) {
  int half = hd / 2, width = nHeads * hd;
  for (int b = 0; b < batch; b++)
    for (int s = 0; s < seq; s++) {
      long p = (long)(pos + s) * half;
      float* row = x + (long)(b * seq + s) * width;
      for (int h = 0; h < nHeads; h++) {
        float* o = row + h * hd;
        for (int i = 0; i < half; i++) {
          double c = cs[p + i], si = sign * sn[p + i], x0 = o[2 * i], x1 = o[2 * i + 1];
          o[2 * i] = (float)(x0 * c - x1 * si);
          o[2 * i + 1] = (float)(x0 * si + x1 * c);
        }
      }
    }
}

void LT_EXPORT(lt_op_rope)(float* x, int batch, int seq, int nHeads, const double* cs, const double* sn, int headDim,
                           int maxSeqLen, int posOffset) {
  (void)maxSeqLen;
  rotate(x, batch, seq, nHeads, cs, sn, headDim, posOffset, 1);
}

void LT_EXPORT(lt_op_ropeBackward)(float* x, int batch, int seq, int nHeads, const double* cs, const double* sn,
                                   int headDim, int maxSeqLen, int posOffset) {
  (void)maxSeqLen;
  rotate(x, batch, seq, nHeads, cs, sn, headDim, posOffset, -1);
}

// ---- elementwise (ops/swiglu.ts, ops/elementwise.ts, ops/adamw.ts): fixed chunks in parallel ----

struct ew {
  float *o1, *o2, *o3;
  const float *a, *b, *c;
  long n;
  double s, p[8];
  double* partial;
};

#define RANGE(a, t) long i0 = (long)(t) * CHUNK, i1 = i0 + CHUNK < (a)->n ? i0 + CHUNK : (a)->n

static void swiglu_task(void* ctx, int t, int tid) {
  (void)tid;
  struct ew* a = ctx;
  RANGE(a, t);
  for (long i = i0; i < i1; i++) {
    float x = a->a[i];
    a->o1[i] = x / (1 + lt_expf(-x)) * a->b[i];
  }
}

void LT_EXPORT(lt_op_swiglu)(float* out, const float* a, const float* b, int n) {
  struct ew e = {.o1 = out, .a = a, .b = b, .n = n};
  lt_parallel(swiglu_task, &e, chunks(n));
}

static void swiglu_back_task(void* ctx, int t, int tid) {
  (void)tid;
  struct ew* a = ctx;
  RANGE(a, t);
  for (long i = i0; i < i1; i++) {
    float x = a->a[i], sig = 1 / (1 + lt_expf(-x)), g = a->c[i];
    a->o1[i] = g * a->b[i] * sig * (1 + x * (1 - sig));
    a->o2[i] = g * x * sig;
  }
}

void LT_EXPORT(lt_op_swigluBackward)(float* da, float* db, const float* dout, const float* a, const float* b, int n) {
  struct ew e = {.o1 = da, .o2 = db, .c = dout, .a = a, .b = b, .n = n};
  lt_parallel(swiglu_back_task, &e, chunks(n));
}

static void add_task(void* ctx, int t, int tid) {
  (void)tid;
  struct ew* a = ctx;
  RANGE(a, t);
  for (long i = i0; i < i1; i++) a->o1[i] = a->a[i] + a->b[i];
}

void LT_EXPORT(lt_op_add)(float* out, const float* a, const float* b, int n) {
  struct ew e = {.o1 = out, .a = a, .b = b, .n = n};
  lt_parallel(add_task, &e, chunks(n));
}

static void scale_task(void* ctx, int t, int tid) {
  (void)tid;
  struct ew* a = ctx;
  RANGE(a, t);
  for (long i = i0; i < i1; i++) a->o1[i] = (float)(a->o1[i] * a->s);
}

void LT_EXPORT(lt_op_scale)(float* x, double s, int n) {
  struct ew e = {.o1 = x, .s = s, .n = n};
  lt_parallel(scale_task, &e, chunks(n));
}

static double partials[65536];

static void sumsq_task(void* ctx, int t, int tid) {
  (void)tid;
  struct ew* a = ctx;
  RANGE(a, t);
  double s0 = 0, s1 = 0;
  long i = i0;
  for (; i + 2 <= i1; i += 2) {
    s0 += (double)a->a[i] * a->a[i];
    s1 += (double)a->a[i + 1] * a->a[i + 1];
  }
  for (; i < i1; i++) s0 += (double)a->a[i] * a->a[i];
  a->partial[t] = s0 + s1;
}

double LT_EXPORT(lt_op_sumSquares)(const float* x, int n) {
  double total = 0;
  // at most 65536 chunks at a time; partial sums are added in order
  for (long base = 0; base < n; base += (long)CHUNK * 65536) {
    long len = n - base < (long)CHUNK * 65536 ? n - base : (long)CHUNK * 65536;
    struct ew e = {.a = x + base, .n = len, .partial = partials};
    int nc = chunks(len);
    lt_parallel(sumsq_task, &e, nc);
    for (int c = 0; c < nc; c++) total += partials[c];
  }
  return total;
}

static void adamw_task(void* ctx, int t, int tid) {
  (void)tid;
  struct ew* a = ctx;
  RANGE(a, t);
  float* p = a->o1;
  float* m = a->o2;
  float* v = a->o3;
  const float* g = a->a;
  double b1 = a->p[0], b2 = a->p[1], eps = a->p[2], step = a->p[3], sq = a->p[4], decay = a->p[5];
  for (long i = i0; i < i1; i++) {
    double gi = g[i];
    double mi = b1 * m[i] + (1 - b1) * gi;
    double vi = b2 * v[i] + (1 - b2) * gi * gi;
    m[i] = (float)mi;
    v[i] = (float)vi;
    p[i] = (float)(p[i] * decay - (step * mi) / (__builtin_sqrt(vi) / sq + eps));
  }
}

void LT_EXPORT(lt_op_adamw)(float* p, const float* g, float* m, float* v, int n, double lr, double beta1, double beta2,
                            double eps, double weightDecay, double step) {
  double bc1 = 1 - lt_pow(beta1, step), bc2 = 1 - lt_pow(beta2, step);
  struct ew e = {.o1 = p, .o2 = m, .o3 = v, .a = g, .n = n,
                 .p = {beta1, beta2, eps, lr / bc1, __builtin_sqrt(bc2), 1 - lr * weightDecay}};
  lt_parallel(adamw_task, &e, chunks(n));
}

// ---- softmax cross-entropy and its pieces (ops/crossentropy.ts): rows in parallel ----

struct ce {
  const float* x;
  const int32_t* targets;
  const float* lse;
  float *out, *d;
  int rows, V;
  double scale;
  double* loss;
};

static float row_max(const float* x, int V) {
  float m = -__builtin_inff();
  for (int j = 0; j < V; j++) m = x[j] > m ? x[j] : m;
  return m;
}

static double row_lse(const float* x, int V) {
  float m = row_max(x, V);
  double s = 0;
  for (int j = 0; j < V; j++) s += lt_expf(x[j] - m);
  return m + lt_log(s);
}

static void softmax_row(float* out, const float* x, int V, double lse, double scale) {
  float l = (float)lse, s = (float)scale;
  for (int j = 0; j < V; j++) out[j] = s * lt_expf(x[j] - l);
}

static void ce_task(void* ctx, int r, int tid) {
  (void)tid;
  struct ce* a = ctx;
  long o = (long)r * a->V;
  int t = a->targets[r];
  if (t < 0) {
    if (a->d) lt_memset(a->d + o, 0, (long)a->V * 4);
    a->loss[r] = 0;
    return;
  }
  double lse = row_lse(a->x + o, a->V);
  a->loss[r] = lse - a->x[o + t];
  if (a->d) {
    softmax_row(a->d + o, a->x + o, a->V, lse, a->scale);
    a->d[o + t] -= (float)a->scale;
  }
}

double LT_EXPORT(lt_op_crossEntropy)(const float* logits, const int32_t* targets, int rows, int V, float* dlogits,
                                     double gradScale) {
  double total = 0;
  for (int r0 = 0; r0 < rows; r0 += 65536) {
    int n = rows - r0 < 65536 ? rows - r0 : 65536;
    struct ce a = {.x = logits + (long)r0 * V, .targets = targets + r0, .d = dlogits ? dlogits + (long)r0 * V : 0,
                   .V = V, .scale = gradScale, .loss = partials};
    lt_parallel(ce_task, &a, n);
    for (int r = 0; r < n; r++) total += partials[r];
  }
  return total;
}

static void lse_task(void* ctx, int r, int tid) {
  (void)tid;
  struct ce* a = ctx;
  a->out[r] = (float)row_lse(a->x + (long)r * a->V, a->V);
}

void LT_EXPORT(lt_op_logSumExp)(float* out, const float* x, int rows, int V) {
  struct ce a = {.out = out, .x = x, .rows = rows, .V = V};
  lt_parallel(lse_task, &a, rows);
}

static void softmax_task(void* ctx, int r, int tid) {
  (void)tid;
  struct ce* a = ctx;
  long o = (long)r * a->V;
  softmax_row(a->out + o, a->x + o, a->V, a->lse[r], a->scale);
}

void LT_EXPORT(lt_op_softmaxScaled)(float* out, const float* x, const float* lse, int rows, int V, double scale) {
  struct ce a = {.out = out, .x = x, .lse = lse, .rows = rows, .V = V, .scale = scale};
  lt_parallel(softmax_task, &a, rows);
}
