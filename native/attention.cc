#include "attention.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "gemm.h"
#include "pool.h"
#include "simd.h"
#include "vmath.h"

namespace lt {
namespace {

constexpr long BR = 64;  // query rows per tile
constexpr long BC = 64;  // key rows per tile

// Visible keys of query row gi in the key tile starting at j0 with nj keys (causal: keys <= gi).
static inline long visible(long gi, long j0, long nj) {
  long n = gi - j0 + 1;
  return n < 0 ? 0 : (n > nj ? nj : n);
}

// Forward, after S = Q·Kᵀ (unscaled) for one query tile x key tile: online-softmax update of the running max m,
// sum l and output O (rows rescaled), and S turned into the probabilities P (masked entries 0) for O += P·V.
LT_CLONES void fwd_softmax_tile(float* S, float* O, float* m, float* l, long ni, long i0, long j0, long nj, long hd,
                                float scale) {
  for (long i = 0; i < ni; i++) {
    float* s = S + i * BC;
    long n = visible(i0 + i, j0, nj);
    if (n == 0) {
      for (long j = 0; j < nj; j++) s[j] = 0.f;
      continue;
    }
    float mx = -INFINITY;
    for (long j = 0; j < n; j++) {
      float x = s[j] * scale;
      s[j] = x;
      mx = x > mx ? x : mx;
    }
    float mnew = mx > m[i] ? mx : m[i];
    float corr = vexp(m[i] - mnew);
    float sum = 0.f;
    for (long j = 0; j < n; j++) {
      float p = vexp(s[j] - mnew);
      s[j] = p;
      sum += p;
    }
    for (long j = n; j < nj; j++) s[j] = 0.f;
    l[i] = l[i] * corr + sum;
    m[i] = mnew;
    if (corr != 1.f) {
      float* o = O + i * hd;
      for (long d = 0; d < hd; d++) o[d] *= corr;
    }
  }
}

// Backward, after S = Q·Kᵀ and dP = dO·Vᵀ (unscaled): S becomes P = exp(S·scale − lse), dP becomes
// dS = P ∘ (dP − D)·scale; masked entries 0.
LT_CLONES void bwd_probs_tile(float* S, float* dP, const float* lse, const float* D, long ni, long i0, long j0, long nj,
                              float scale) {
  for (long i = 0; i < ni; i++) {
    float* s = S + i * BC;
    float* ds = dP + i * BC;
    long n = visible(i0 + i, j0, nj);
    float L = lse[i], Di = D[i];
    for (long j = 0; j < n; j++) {
      float p = vexp(s[j] * scale - L);
      s[j] = p;
      ds[j] = p * (ds[j] - Di) * scale;
    }
    for (long j = n; j < nj; j++) s[j] = ds[j] = 0.f;
  }
}

// D[i] = Σ_d dO[i,d]·O[i,d]
LT_CLONES void row_dots(float* D, const float* a, const float* b, long ld, long ni, long hd) {
  for (long i = 0; i < ni; i++) {
    const float* x = a + i * ld;
    const float* y = b + i * ld;
    float acc[16];
    for (int l = 0; l < 16; l++) acc[l] = 0.f;
    long d = 0;
    for (; d + 16 <= hd; d += 16)
      for (int l = 0; l < 16; l++) acc[l] += x[d + l] * y[d + l];
    float s = 0.f;
    for (; d < hd; d++) s += x[d] * y[d];
    for (int l = 0; l < 16; l++) s += acc[l];
    D[i] = s;
  }
}

struct Scratch {
  std::vector<float> a, b, c, d;
};
thread_local Scratch tl;

float* buf(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

// The query tile a task of a (batch, head, query tile) loop owns; late tiles (the most work under the causal mask)
// go to the first tasks.
struct QueryTile {
  long b, h, kvh, i0, ni;
};
QueryTile query_tile(long task, long ntiles, long T, long H, long rep) {
  long it = ntiles - 1 - task % ntiles;
  long bh = task / ntiles, h = bh % H, i0 = it * BR;
  return {bh / H, h, h / rep, i0, i0 + BR < T ? BR : T - i0};
}

}  // namespace

// Tile products run through the SGEMM micro-kernels on the task's own thread (sgemm_serial):
//   S = Q_i·K_jᵀ, O_i += P·V_j (forward); dP = dO_i·V_jᵀ, dV_j += Pᵀ·dO_i, dK_j += dSᵀ·Q_i, dQ_i += dS·K_j (backward).
void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, long B, long T, long H,
                       long KV, long hd) {
  const long qw = H * hd, kw = KV * hd, rep = H / KV;
  const long ntiles = (T + BR - 1) / BR;
  const float scale = (float)(1.0 / std::sqrt((double)hd));
  // largest tiles first: the causal triangle makes late query tiles the most expensive
  parallel_for(B * H * ntiles, [&](long task) {
    QueryTile tile = query_tile(task, ntiles, T, H, rep);
    const long b = tile.b, h = tile.h, kvh = tile.kvh, i0 = tile.i0, ni = tile.ni;
    float* S = buf(tl.a, (size_t)BR * BC);
    float* O = buf(tl.b, (size_t)BR * hd);
    float* ml = buf(tl.c, 2 * BR);
    float* m = ml;
    float* l = ml + BR;
    for (long i = 0; i < ni; i++) {
      m[i] = -INFINITY;
      l[i] = 0.f;
    }
    std::memset(O, 0, sizeof(float) * ni * hd);
    const float* qt = q + (b * T + i0) * qw + h * hd;
    long last = i0 + ni - 1;
    for (long j0 = 0; j0 <= last; j0 += BC) {  // key tiles after the last query row are never visited
      long nj = j0 + BC < T ? BC : T - j0;
      const float* kt = k + (b * T + j0) * kw + kvh * hd;
      const float* vt = v + (b * T + j0) * kw + kvh * hd;
      sgemm_serial(ni, nj, hd, qt, qw, 1, kt, 1, kw, S, BC, false);
      fwd_softmax_tile(S, O, m, l, ni, i0, j0, nj, hd, scale);
      sgemm_serial(ni, hd, nj, S, BC, 1, vt, kw, 1, O, hd, true);
    }
    for (long i = 0; i < ni; i++) {
      float* dst = out + (b * T + i0 + i) * qw + h * hd;
      float inv = 1.0f / l[i];
      for (long d = 0; d < hd; d++) dst[d] = O[i * hd + d] * inv;
      lse[(b * H + h) * T + i0 + i] = m[i] + std::log(l[i]);
    }
  });
}

void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, const float* out, const float* lse, long B, long T, long H, long KV, long hd) {
  const long qw = H * hd, kw = KV * hd, rep = H / KV;
  const long ntiles = (T + BC - 1) / BC;
  const float scale = (float)(1.0 / std::sqrt((double)hd));
  // pass 1: dK, dV; a task owns (b, kv head, key tile) and sums over the query heads of its group; early key tiles
  // see the most queries, so they go first
  parallel_for(B * KV * ntiles, [&](long task) {
    long jt = task % ntiles;
    long bk = task / ntiles, b = bk / KV, kvh = bk % KV;
    long j0 = jt * BC, nj = j0 + BC < T ? BC : T - j0;
    float* S = buf(tl.a, (size_t)BR * BC);
    float* dP = buf(tl.b, (size_t)BR * BC);
    float* dK = buf(tl.c, (size_t)2 * BC * hd);
    float* dV = dK + BC * hd;
    float* D = buf(tl.d, BR);
    std::memset(dK, 0, sizeof(float) * 2 * BC * hd);
    const float* kt = k + (b * T + j0) * kw + kvh * hd;
    const float* vt = v + (b * T + j0) * kw + kvh * hd;
    for (long h = kvh * rep; h < (kvh + 1) * rep; h++) {
      for (long i0 = (j0 / BR) * BR; i0 < T; i0 += BR) {  // query tiles before the key tile are fully masked
        long ni = i0 + BR < T ? BR : T - i0;
        const float* qt = q + (b * T + i0) * qw + h * hd;
        const float* dot = dout + (b * T + i0) * qw + h * hd;
        const float* ot = out + (b * T + i0) * qw + h * hd;
        row_dots(D, dot, ot, qw, ni, hd);
        sgemm_serial(ni, nj, hd, qt, qw, 1, kt, 1, kw, S, BC, false);
        sgemm_serial(ni, nj, hd, dot, qw, 1, vt, 1, kw, dP, BC, false);
        bwd_probs_tile(S, dP, lse + (b * H + h) * T + i0, D, ni, i0, j0, nj, scale);
        sgemm_serial(nj, hd, ni, S, 1, BC, dot, qw, 1, dV, hd, true);
        sgemm_serial(nj, hd, ni, dP, 1, BC, qt, qw, 1, dK, hd, true);
      }
    }
    for (long j = 0; j < nj; j++) {
      std::memcpy(dk + (b * T + j0 + j) * kw + kvh * hd, dK + j * hd, sizeof(float) * hd);
      std::memcpy(dv + (b * T + j0 + j) * kw + kvh * hd, dV + j * hd, sizeof(float) * hd);
    }
  });
  // pass 2: dQ; a task owns (b, head, query tile); late query tiles are the largest, so they go first
  const long qtiles = (T + BR - 1) / BR;
  parallel_for(B * H * qtiles, [&](long task) {
    QueryTile tile = query_tile(task, qtiles, T, H, rep);
    const long b = tile.b, h = tile.h, kvh = tile.kvh, i0 = tile.i0, ni = tile.ni;
    float* S = buf(tl.a, (size_t)BR * BC);
    float* dP = buf(tl.b, (size_t)BR * BC);
    float* dQ = buf(tl.c, (size_t)BR * hd);
    float* D = buf(tl.d, BR);
    std::memset(dQ, 0, sizeof(float) * ni * hd);
    const float* qt = q + (b * T + i0) * qw + h * hd;
    const float* dot = dout + (b * T + i0) * qw + h * hd;
    const float* ot = out + (b * T + i0) * qw + h * hd;
    row_dots(D, dot, ot, qw, ni, hd);
    long last = i0 + ni - 1;
    for (long j0 = 0; j0 <= last; j0 += BC) {
      long nj = j0 + BC < T ? BC : T - j0;
      const float* kt = k + (b * T + j0) * kw + kvh * hd;
      const float* vt = v + (b * T + j0) * kw + kvh * hd;
      sgemm_serial(ni, nj, hd, qt, qw, 1, kt, 1, kw, S, BC, false);
      sgemm_serial(ni, nj, hd, dot, qw, 1, vt, 1, kw, dP, BC, false);
      bwd_probs_tile(S, dP, lse + (b * H + h) * T + i0, D, ni, i0, j0, nj, scale);
      sgemm_serial(ni, hd, nj, dP, BC, 1, kt, kw, 1, dQ, hd, true);
    }
    for (long i = 0; i < ni; i++) std::memcpy(dq + (b * T + i0 + i) * qw + h * hd, dQ + i * hd, sizeof(float) * hd);
  });
}


// ---------------------------------------------------------------- attention over a KV cache (inference)

namespace {
typedef float v8f __attribute__((vector_size(32)));

LT_CLONES float dot_f(const float* a, const float* b, long n) {
  v8f s0 = {0, 0, 0, 0, 0, 0, 0, 0}, s1 = s0;
  long d = 0;
  for (; d + 16 <= n; d += 16) {
    v8f a0, a1, b0, b1;
    std::memcpy(&a0, a + d, 32), std::memcpy(&a1, a + d + 8, 32);
    std::memcpy(&b0, b + d, 32), std::memcpy(&b1, b + d + 8, 32);
    s0 += a0 * b0;
    s1 += a1 * b1;
  }
  for (; d + 8 <= n; d += 8) {
    v8f a0, b0;
    std::memcpy(&a0, a + d, 32), std::memcpy(&b0, b + d, 32);
    s0 += a0 * b0;
  }
  v8f s = s0 + s1;
  float r = ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
  for (; d < n; d++) r += a[d] * b[d];
  return r;
}

// scores (scaled) → exp(s - max) in place; returns the sum.
LT_CLONES float softmax_unnorm(float* s, long n) {
  float mx = -INFINITY;
  for (long j = 0; j < n; j++) mx = s[j] > mx ? s[j] : mx;
  float sum = 0.f;
  for (long j = 0; j < n; j++) {
    float e = vexp(s[j] - mx);
    s[j] = e;
    sum += e;
  }
  return sum;
}

LT_CLONES void axpy_rows(float* acc, const float* p, const float* v, long kw, long n, long hd) {
  for (long d = 0; d < hd; d++) acc[d] = 0.f;
  for (long j = 0; j < n; j++) {
    const float* vr = v + j * kw;
    float pj = p[j];
    for (long d = 0; d < hd; d++) acc[d] += pj * vr[d];
  }
}

struct CachedScratch {
  std::vector<float> s;
};
thread_local CachedScratch tl_cached;
}  // namespace

void attention_cached(float* out, const float* q, const float* k, const float* v, long n, long pos, long H, long KV,
                      long hd) {
  if (n <= 0 || H <= 0 || hd <= 0) return;
  const long rep = H / KV, qw = H * hd, kw = KV * hd;
  const float scale = 1.0f / std::sqrt((float)hd);
  parallel_for(n * H, [&](long t) {
    long i = t / H, h = t % H, len = pos + i + 1;
    std::vector<float>& s = tl_cached.s;
    if ((long)s.size() < len + hd) s.resize(len + hd);
    const float* qr = q + i * qw + h * hd;
    const float* kh = k + (h / rep) * hd;
    float* sc = s.data();
    float* acc = sc + len;
    for (long j = 0; j < len; j++) sc[j] = dot_f(qr, kh + j * kw, hd) * scale;
    float inv = 1.0f / softmax_unnorm(sc, len);
    axpy_rows(acc, sc, v + (h / rep) * hd, kw, len, hd);
    float* o = out + i * qw + h * hd;
    for (long d = 0; d < hd; d++) o[d] = acc[d] * inv;
  });
}

}  // namespace lt
