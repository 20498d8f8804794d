#include "kernels.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "bgemm.h"
#include "pool.h"
#include "simd.h"
#include "vmath.h"

namespace lt {

namespace {
constexpr long EW_BLOCK = 1 << 15;  // elements per task of the elementwise kernels

template <class F>
void for_blocks(long n, long block, F&& f) {
  long nt = (n + block - 1) / block;
  parallel_for(nt, [&](long t) {
    long s = t * block, e = s + block < n ? s + block : n;
    f(s, e);
  });
}

// rows per task so that each task has ~64K floats of work
long rows_per_task(long rows, long dim) {
  long r = (1L << 16) / (dim > 0 ? dim : 1);
  if (r < 1) r = 1;
  long max_tasks = 8L * pool_threads();
  if ((rows + r - 1) / r < max_tasks) r = (rows + max_tasks - 1) / max_tasks;
  return r < 1 ? 1 : r;
}

template <class F>
void for_rows(long rows, long dim, F&& f) {
  long r = rows_per_task(rows, dim);
  long nt = (rows + r - 1) / r;
  parallel_for(nt, [&](long t) {
    long s = t * r, e = s + r < rows ? s + r : rows;
    for (long i = s; i < e; i++) f(i);
  });
}

LT_CLONES double dot_sq_d(const float* x, long n) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  long i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; l++) acc[l] += (double)x[i + l] * (double)x[i + l];
  double s = 0;
  for (; i < n; i++) s += (double)x[i] * x[i];
  for (int l = 0; l < 8; l++) s += acc[l];
  return s;
}

LT_CLONES double dot3_d(const float* a, const float* w, const float* x, long n) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  long i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; l++) acc[l] += (double)a[i + l] * w[i + l] * x[i + l];
  double s = 0;
  for (; i < n; i++) s += (double)a[i] * w[i] * x[i];
  for (int l = 0; l < 8; l++) s += acc[l];
  return s;
}

LT_CLONES void scale_mul_row(float* out, const float* x, const float* w, float s, long n) {
  for (long i = 0; i < n; i++) out[i] = x[i] * s * w[i];
}

LT_CLONES void rmsnorm_bwd_row(float* dx, const float* dout, const float* x, const float* w, float s, float mean, long n) {
  for (long i = 0; i < n; i++) dx[i] += s * (dout[i] * w[i] - x[i] * s * mean);
}

LT_CLONES void rmsnorm_dw_cols(float* dw, const float* dout, const float* x, const float* rstd, long rows, long dim, long c0,
                               long c1) {
  float acc[64];
  long w = c1 - c0;
  for (long j = 0; j < w; j++) acc[j] = 0.f;
  for (long r = 0; r < rows; r++) {
    const float* d = dout + r * dim + c0;
    const float* xx = x + r * dim + c0;
    float s = rstd[r];
    for (long j = 0; j < w; j++) acc[j] += d[j] * (xx[j] * s);
  }
  for (long j = 0; j < w; j++) dw[c0 + j] += acc[j];
}

LT_CLONES void rope_row(float* x, long nHeads, long hd, const double* c, const double* sn, double sign) {
  long half = hd / 2;
  for (long h = 0; h < nHeads; h++) {
    float* o = x + h * hd;
    for (long i = 0; i < half; i++) {
      double x0 = o[2 * i], x1 = o[2 * i + 1];
      double s = sign * sn[i];
      o[2 * i] = (float)(x0 * c[i] - x1 * s);
      o[2 * i + 1] = (float)(x0 * s + x1 * c[i]);
    }
  }
}

LT_CLONES void swiglu_range(float* out, const float* a, const float* b, long s, long e) {
  for (long i = s; i < e; i++) {
    float x = a[i];
    out[i] = x / (1.0f + vexp(-x)) * b[i];
  }
}

LT_CLONES void swiglu_bwd_range(float* da, float* db, const float* dout, const float* a, const float* b, long s, long e) {
  for (long i = s; i < e; i++) {
    float x = a[i];
    float sig = 1.0f / (1.0f + vexp(-x));
    float g = dout[i];
    float bi = b[i];
    da[i] = g * bi * sig * (1.0f + x * (1.0f - sig));
    db[i] = g * x * sig;
  }
}

LT_CLONES void add_range(float* out, const float* a, const float* b, long s, long e) {
  for (long i = s; i < e; i++) out[i] = a[i] + b[i];
}

LT_CLONES void scale_range(float* x, double sc, long s, long e) {
  for (long i = s; i < e; i++) x[i] = (float)((double)x[i] * sc);
}

LT_CLONES void add_row(float* dst, const float* src, long n) {
  for (long i = 0; i < n; i++) dst[i] += src[i];
}

LT_CLONES float row_max(const float* x, long n) {
  float m[16];
  for (int l = 0; l < 16; l++) m[l] = -INFINITY;
  long i = 0;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; l++) m[l] = x[i + l] > m[l] ? x[i + l] : m[l];
  float r = -INFINITY;
  for (; i < n; i++) r = x[i] > r ? x[i] : r;
  for (int l = 0; l < 16; l++) r = m[l] > r ? m[l] : r;
  return r;
}

LT_CLONES double row_sum_exp(const float* x, long n, float max) {
  float acc[16];
  for (int l = 0; l < 16; l++) acc[l] = 0.f;
  long i = 0;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; l++) acc[l] += vexp(x[i + l] - max);
  double s = 0;
  for (; i < n; i++) s += vexp(x[i] - max);
  for (int l = 0; l < 16; l++) s += acc[l];
  return s;
}

// row_sum_exp that also keeps each exp(x - max) in e: the same sum, bit for bit
LT_CLONES double row_sum_exp_keep(const float* x, float* e, long n, float max) {
  float acc[16];
  for (int l = 0; l < 16; l++) acc[l] = 0.f;
  long i = 0;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; l++) {
      float v = vexp(x[i + l] - max);
      e[i + l] = v;
      acc[l] += v;
    }
  double s = 0;
  for (; i < n; i++) {
    float v = vexp(x[i] - max);
    e[i] = v;
    s += v;
  }
  for (int l = 0; l < 16; l++) s += acc[l];
  return s;
}

LT_CLONES void row_scale(float* d, const float* e, long n, float scale) {
  for (long i = 0; i < n; i++) d[i] = scale * e[i];
}

LT_CLONES void row_softmax_grad(float* d, const float* x, long n, float lse, float gs) {
  for (long i = 0; i < n; i++) d[i] = gs * vexp(x[i] - lse);
}

LT_CLONES void adamw_range(float* p, const float* g, float* m, float* v, long s, long e, float b1, float b2, float stepSize,
                           float sqrtBc2, float decay, float eps) {
  const float ob1 = 1.0f - b1, ob2 = 1.0f - b2;
  for (long i = s; i < e; i++) {
    float gi = g[i];
    float mi = b1 * m[i] + ob1 * gi;
    float vi = b2 * v[i] + ob2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decay - (stepSize * mi) / (std::sqrt(vi) / sqrtBc2 + eps);
  }
}

}  // namespace

void embedding(float* out, const float* table, const int32_t* tokens, long n, long dim) {
  for_rows(n, dim, [&](long i) { std::memcpy(out + i * dim, table + (long)tokens[i] * dim, sizeof(float) * dim); });
}

void embedding_backward(float* dtable, const float* dout, const int32_t* tokens, long n, long dim) {
  // tasks own column slices, so repeated tokens never race and the sum order is fixed
  const long W = 64;
  long nt = (dim + W - 1) / W;
  parallel_for(nt, [&](long t) {
    long c0 = t * W, w = c0 + W < dim ? W : dim - c0;
    for (long i = 0; i < n; i++) add_row(dtable + (long)tokens[i] * dim + c0, dout + i * dim + c0, w);
  });
}

void rmsnorm(float* out, float* rstd, const float* x, const float* w, long rows, long dim, float eps) {
  for_rows(rows, dim, [&](long r) {
    const float* xr = x + r * dim;
    double ss = dot_sq_d(xr, dim);
    float s = (float)(1.0 / std::sqrt(ss / dim + eps));
    rstd[r] = s;
    scale_mul_row(out + r * dim, xr, w, s, dim);
  });
}

void rmsnorm_backward(float* dx, float* dw, const float* dout, const float* x, const float* w, const float* rstd, long rows,
                      long dim) {
  for_rows(rows, dim, [&](long r) {
    const float* xr = x + r * dim;
    const float* dr = dout + r * dim;
    float s = rstd[r];
    double dot = dot3_d(dr, w, xr, dim) * s;
    float mean = (float)(dot / dim);
    rmsnorm_bwd_row(dx + r * dim, dr, xr, w, s, mean, dim);
  });
  const long W = 64;
  long nt = (dim + W - 1) / W;
  parallel_for(nt, [&](long t) {
    long c0 = t * W, c1 = c0 + W < dim ? c0 + W : dim;
    rmsnorm_dw_cols(dw, dout, x, rstd, rows, dim, c0, c1);
  });
}

void rope(float* x, long batch, long seq, long nHeads, long headDim, const double* cos, const double* sin, long posOffset,
          double sign) {
  long half = headDim / 2, width = nHeads * headDim;
  for_rows(batch * seq, width, [&](long row) {
    long p = (posOffset + row % seq) * half;
    rope_row(x + row * width, nHeads, headDim, cos + p, sin + p, sign);
  });
}

void swiglu(float* out, const float* a, const float* b, long n) {
  for_blocks(n, EW_BLOCK, [&](long s, long e) { swiglu_range(out, a, b, s, e); });
}

void swiglu_backward(float* da, float* db, const float* dout, const float* a, const float* b, long n) {
  for_blocks(n, EW_BLOCK, [&](long s, long e) { swiglu_bwd_range(da, db, dout, a, b, s, e); });
}

void add(float* out, const float* a, const float* b, long n) {
  for_blocks(n, EW_BLOCK * 2, [&](long s, long e) { add_range(out, a, b, s, e); });
}

void scale(float* x, double s, long n) {
  for_blocks(n, EW_BLOCK * 2, [&](long b, long e) { scale_range(x, s, b, e); });
}

double sum_squares(const float* x, long n) {
  const long B = 1 << 16;
  long nt = (n + B - 1) / B;
  std::vector<double> part(nt > 0 ? nt : 1, 0.0);
  parallel_for(nt, [&](long t) {
    long s = t * B, e = s + B < n ? s + B : n;
    part[t] = dot_sq_d(x + s, e - s);
  });
  double total = 0;
  for (long t = 0; t < nt; t++) total += part[t];
  return total;
}

// The bfloat16 gradient: the exps the log-sum-exp sums are kept (a row in L2), each scaled by gradScale / sum in
// float32 blocks in L1 (the target's less gradScale), rounded as f32_to_bf16 rounds: one exp an element, not two,
// and no float32 row in memory. The loss is crossEntropy's, bit for bit; the gradient is crossEntropy's
// gs·exp(x − lse) up to float32 rounding (before the bf16 rounding).
constexpr long CE_BLOCK = 4096;
thread_local std::vector<float> tl_ce_block, tl_ce_exp;

double cross_entropy(const float* logits, const int32_t* targets, long rows, long V, float* dlogits, float gradScale,
                     uint16_t* dlogits16) {
  std::vector<double> loss(rows > 0 ? rows : 1, 0.0);
  long r_per = rows_per_task(rows, V);
  long nt = (rows + r_per - 1) / r_per;
  parallel_for(nt, [&](long t) {
    long s = t * r_per, e = s + r_per < rows ? s + r_per : rows;
    for (long r = s; r < e; r++) {
      const float* x = logits + r * V;
      int32_t tg = targets[r];
      if (tg < 0) {
        if (dlogits) std::memset(dlogits + r * V, 0, sizeof(float) * V);
        if (dlogits16) std::memset(dlogits16 + r * V, 0, sizeof(uint16_t) * V);
        continue;
      }
      float mx = row_max(x, V);
      float* ex = nullptr;
      if (dlogits16) {
        if (tl_ce_exp.size() < (size_t)V) tl_ce_exp.resize(V);
        ex = tl_ce_exp.data();
      }
      double sum = ex ? row_sum_exp_keep(x, ex, V, mx) : row_sum_exp(x, V, mx);
      double lse = (double)mx + std::log(sum);
      loss[r] = lse - (double)x[tg];
      if (dlogits) {
        float* d = dlogits + r * V;
        row_softmax_grad(d, x, V, (float)lse, gradScale);
        d[tg] -= gradScale;
      } else if (dlogits16) {
        if (tl_ce_block.size() < (size_t)CE_BLOCK) tl_ce_block.resize(CE_BLOCK);
        float* d = tl_ce_block.data();
        const float sc = (float)((double)gradScale / sum);
        for (long j0 = 0; j0 < V; j0 += CE_BLOCK) {
          long n = V - j0 < CE_BLOCK ? V - j0 : CE_BLOCK;
          row_scale(d, ex + j0, n, sc);
          if (tg >= j0 && tg < j0 + n) d[tg - j0] -= gradScale;
          f32_to_bf16_serial(d, dlogits16 + r * V + j0, n);
        }
      }
    }
  });
  double total = 0;
  for (long r = 0; r < rows; r++) total += loss[r];
  return total;
}

void log_sum_exp(float* out, const float* x, long rows, long V) {
  for_rows(rows, V, [&](long r) {
    const float* xr = x + r * V;
    float mx = row_max(xr, V);
    out[r] = (float)((double)mx + std::log(row_sum_exp(xr, V, mx)));
  });
}

void softmax_scaled(float* out, const float* x, const float* lse, long rows, long V, float scale) {
  for_rows(rows, V, [&](long r) { row_softmax_grad(out + r * V, x + r * V, V, lse[r], scale); });
}

void adamw(float* p, const float* g, float* m, float* v, long n, double lr, double beta1, double beta2, double eps,
           double wd, double step) {
  double bc1 = 1 - std::pow(beta1, step), bc2 = 1 - std::pow(beta2, step);
  float stepSize = (float)(lr / bc1), sqrtBc2 = (float)std::sqrt(bc2), decay = (float)(1 - lr * wd);
  for_blocks(n, EW_BLOCK, [&](long s, long e) {
    adamw_range(p, g, m, v, s, e, (float)beta1, (float)beta2, stepSize, sqrtBc2, decay, (float)eps);
  });
}

}  // namespace lt
