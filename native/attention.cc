#include "attention.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "pool.h"
#include "simd.h"
#include "vmath.h"

namespace lt {
namespace {

#define LT_INLINE static inline __attribute__((always_inline))
constexpr long BR = 64;  // query rows per tile
constexpr long BC = 64;  // key rows per tile

// Kt[d*BC + j] = src[j*ld + d] for j < n, zero for n <= j < BC.
void transpose_tile(float* Kt, const float* src, long ld, long n, long hd) {
  for (long d = 0; d < hd; d++) {
    float* dst = Kt + d * BC;
    long j = 0;
    for (; j < n; j++) dst[j] = src[j * ld + d];
    for (; j < BC; j++) dst[j] = 0.f;
  }
}

// S[i*BC + j] = scale * Σ_d A[i*lda + d] · Kt[d*BC + j] for i < m, all BC columns.
LT_INLINE void tile_abt(float* S, const float* A, long lda, const float* Kt, long m, long hd, float scale) {
  for (long i = 0; i < m; i++) {
    float acc[BC];
    for (long j = 0; j < BC; j++) acc[j] = 0.f;
    const float* a = A + i * lda;
    for (long d = 0; d < hd; d++) {
      float x = a[d];
      const float* kt = Kt + d * BC;
      for (long j = 0; j < BC; j++) acc[j] += x * kt[j];
    }
    float* s = S + i * BC;
    for (long j = 0; j < BC; j++) s[j] = acc[j] * scale;
  }
}

// dst[0..hd) += x * src[0..hd)
LT_INLINE void axpy(float* dst, const float* src, float x, long hd) {
  for (long d = 0; d < hd; d++) dst[d] += x * src[d];
}

LT_INLINE void scale_row(float* x, float s, long n) {
  for (long i = 0; i < n; i++) x[i] *= s;
}

// Online-softmax update of one query row against one key tile of n valid keys (the rest masked).
// Returns nothing; updates m, l, o (o[0..hd)) and turns s[0..BC) into probabilities.
LT_INLINE void softmax_row_update(float* s, long n, float* m, float* l, float* o, long hd) {
  float mx = -INFINITY;
  for (long j = 0; j < n; j++) mx = s[j] > mx ? s[j] : mx;
  float mnew = mx > *m ? mx : *m;
  float corr = vexp(*m - mnew);
  float sum = 0.f;
  for (long j = 0; j < BC; j++) {
    float p = j < n ? vexp(s[j] - mnew) : 0.f;
    s[j] = p;
    sum += p;
  }
  *l = *l * corr + sum;
  *m = mnew;
  if (corr != 1.f)
    for (long d = 0; d < hd; d++) o[d] *= corr;
}

// P[i,j] = exp(S[i,j] - lse_i) for valid j, else 0; dS = P ∘ (dP − D_i) · scale (in place in dP).
LT_INLINE void probs_and_ds(float* S, float* dP, long n, float lse, float Drow, float scale) {
  for (long j = 0; j < BC; j++) {
    float p = j < n ? vexp(S[j] - lse) : 0.f;
    S[j] = p;
    dP[j] = p * (dP[j] - Drow) * scale;
  }
}

LT_INLINE float dot(const float* a, const float* b, long n) {
  float acc[16];
  for (int l = 0; l < 16; l++) acc[l] = 0.f;
  long i = 0;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; l++) acc[l] += a[i + l] * b[i + l];
  float s = 0.f;
  for (; i < n; i++) s += a[i] * b[i];
  for (int l = 0; l < 16; l++) s += acc[l];
  return s;
}


// Forward, one query tile against one key tile: masking, online softmax, O += P·V.
LT_CLONES void fwd_tile(float* S, float* O, float* m, float* l, const float* vt, long kw, long ni, long i0, long j0, long nj,
                        long hd) {
  for (long i = 0; i < ni; i++) {
    long n = i0 + i - j0 + 1;  // keys j0..i0+i are visible
    if (n > nj) n = nj;
    if (n <= 0) continue;
    float* s = S + i * BC;
    float* o = O + i * hd;
    softmax_row_update(s, n, &m[i], &l[i], o, hd);
    for (long j = 0; j < n; j++)
      if (s[j] != 0.f) axpy(o, vt + j * kw, s[j], hd);
  }
}

// Backward for dK/dV of one key tile from one query tile (S = scaled scores, dP = dO·Vᵀ on entry).
LT_CLONES void bwd_kv_tile(float* S, float* dP, float* dK, float* dV, const float* qt, const float* dot_, const float* ot,
                           const float* lse, long qw, long ni, long i0, long j0, long nj, long hd, float scale) {
  for (long i = 0; i < ni; i++) {
    long n = i0 + i - j0 + 1;
    if (n > nj) n = nj;
    if (n <= 0) continue;
    float Drow = dot(dot_ + i * qw, ot + i * qw, hd);
    float* s = S + i * BC;
    float* ds = dP + i * BC;
    probs_and_ds(s, ds, n, lse[i], Drow, scale);
    for (long j = 0; j < n; j++) {
      if (s[j] != 0.f) axpy(dV + j * hd, dot_ + i * qw, s[j], hd);
      if (ds[j] != 0.f) axpy(dK + j * hd, qt + i * qw, ds[j], hd);
    }
  }
}

// Backward for dQ of one query tile from one key tile.
LT_CLONES void bwd_q_tile(float* S, float* dP, float* dQ, const float* Dr, const float* kt, long kw, const float* lse, long ni,
                          long i0, long j0, long nj, long hd, float scale) {
  for (long i = 0; i < ni; i++) {
    long n = i0 + i - j0 + 1;
    if (n > nj) n = nj;
    if (n <= 0) continue;
    float* s = S + i * BC;
    float* ds = dP + i * BC;
    probs_and_ds(s, ds, n, lse[i], Dr[i], scale);
    float* o = dQ + i * hd;
    for (long j = 0; j < n; j++)
      if (ds[j] != 0.f) axpy(o, kt + j * kw, ds[j], hd);
  }
}

LT_CLONES void tile_abt_c(float* S, const float* A, long lda, const float* Kt, long m, long hd, float scale) {
  tile_abt(S, A, lda, Kt, m, hd, scale);
}

LT_CLONES float dot_c(const float* a, const float* b, long n) { return dot(a, b, n); }

struct Scratch {
  std::vector<float> a, b, c, d, e, f;
};
thread_local Scratch tl;

float* buf(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

}  // namespace

void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, long B, long T, long H,
                       long KV, long hd) {
  const long qw = H * hd, kw = KV * hd, rep = H / KV;
  const long ntiles = (T + BR - 1) / BR;
  const float scale = (float)(1.0 / std::sqrt((double)hd));
  // largest tiles first: the causal triangle makes late query tiles the most expensive
  parallel_for(B * H * ntiles, [&](long task) {
    long it = ntiles - 1 - task % ntiles;
    long bh = task / ntiles, b = bh / H, h = bh % H, kvh = h / rep;
    long i0 = it * BR, ni = i0 + BR < T ? BR : T - i0;
    float* Kt = buf(tl.a, (size_t)hd * BC);
    float* S = buf(tl.b, (size_t)BR * BC);
    float* O = buf(tl.c, (size_t)BR * hd);
    float* ml = buf(tl.d, 2 * BR);
    float* m = ml;
    float* l = ml + BR;
    for (long i = 0; i < ni; i++) {
      m[i] = -INFINITY;
      l[i] = 0.f;
    }
    std::memset(O, 0, sizeof(float) * ni * hd);
    const float* qt = q + (b * T + i0) * qw + h * hd;
    long last = i0 + ni - 1;
    for (long j0 = 0; j0 <= last; j0 += BC) {
      long nj = j0 + BC < T ? BC : T - j0;
      const float* kt = k + (b * T + j0) * kw + kvh * hd;
      const float* vt = v + (b * T + j0) * kw + kvh * hd;
      transpose_tile(Kt, kt, kw, nj, hd);
      tile_abt_c(S, qt, qw, Kt, ni, hd, scale);
      fwd_tile(S, O, m, l, vt, kw, ni, i0, j0, nj, hd);
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
  // pass 1: dK, dV; a task owns (b, kv head, key tile); early key tiles see the most queries, so go first
  parallel_for(B * KV * ntiles, [&](long task) {
    long jt = task % ntiles;
    long bk = task / ntiles, b = bk / KV, kvh = bk % KV;
    long j0 = jt * BC, nj = j0 + BC < T ? BC : T - j0;
    float* Kt = buf(tl.a, (size_t)hd * BC);
    float* Vt = buf(tl.b, (size_t)hd * BC);
    float* S = buf(tl.c, (size_t)BR * BC);
    float* dP = buf(tl.d, (size_t)BR * BC);
    float* dK = buf(tl.e, (size_t)2 * BC * hd);
    float* dV = dK + BC * hd;
    std::memset(dK, 0, sizeof(float) * 2 * BC * hd);
    const float* kt = k + (b * T + j0) * kw + kvh * hd;
    const float* vt = v + (b * T + j0) * kw + kvh * hd;
    transpose_tile(Kt, kt, kw, nj, hd);
    transpose_tile(Vt, vt, kw, nj, hd);
    for (long h = kvh * rep; h < (kvh + 1) * rep; h++) {
      for (long i0 = (j0 / BR) * BR; i0 < T; i0 += BR) {
        long ni = i0 + BR < T ? BR : T - i0;
        const float* qt = q + (b * T + i0) * qw + h * hd;
        const float* dot_ = dout + (b * T + i0) * qw + h * hd;
        const float* ot = out + (b * T + i0) * qw + h * hd;
        const float* lt_ = lse + (b * H + h) * T + i0;
        tile_abt_c(S, qt, qw, Kt, ni, hd, scale);
        tile_abt_c(dP, dot_, qw, Vt, ni, hd, 1.0f);
        bwd_kv_tile(S, dP, dK, dV, qt, dot_, ot, lt_, qw, ni, i0, j0, nj, hd, scale);
      }
    }
    for (long j = 0; j < nj; j++) {
      std::memcpy(dk + (b * T + j0 + j) * kw + kvh * hd, dK + j * hd, sizeof(float) * hd);
      std::memcpy(dv + (b * T + j0 + j) * kw + kvh * hd, dV + j * hd, sizeof(float) * hd);
    }
  });
  // pass 2: dQ; a task owns (b, head, query tile); late query tiles are the largest, so go first
  const long qtiles = (T + BR - 1) / BR;
  parallel_for(B * H * qtiles, [&](long task) {
    long it = qtiles - 1 - task % qtiles;
    long bh = task / qtiles, b = bh / H, h = bh % H, kvh = h / rep;
    long i0 = it * BR, ni = i0 + BR < T ? BR : T - i0;
    float* Kt = buf(tl.a, (size_t)hd * BC);
    float* Vt = buf(tl.b, (size_t)hd * BC);
    float* S = buf(tl.c, (size_t)BR * BC);
    float* dP = buf(tl.d, (size_t)BR * BC);
    float* dQ = buf(tl.e, (size_t)BR * hd + BR);
    float* Dr = dQ + BR * hd;
    std::memset(dQ, 0, sizeof(float) * BR * hd);
    const float* qt = q + (b * T + i0) * qw + h * hd;
    const float* dot_ = dout + (b * T + i0) * qw + h * hd;
    const float* ot = out + (b * T + i0) * qw + h * hd;
    const float* lt_ = lse + (b * H + h) * T + i0;
    for (long i = 0; i < ni; i++) Dr[i] = dot_c(dot_ + i * qw, ot + i * qw, hd);
    long last = i0 + ni - 1;
    for (long j0 = 0; j0 <= last; j0 += BC) {
      long nj = j0 + BC < T ? BC : T - j0;
      const float* kt = k + (b * T + j0) * kw + kvh * hd;
      const float* vt = v + (b * T + j0) * kw + kvh * hd;
      transpose_tile(Kt, kt, kw, nj, hd);
      transpose_tile(Vt, vt, kw, nj, hd);
      tile_abt_c(S, qt, qw, Kt, ni, hd, scale);
      tile_abt_c(dP, dot_, qw, Vt, ni, hd, 1.0f);
      bwd_q_tile(S, dP, dQ, Dr, kt, kw, lt_, ni, i0, j0, nj, hd, scale);
    }
    for (long i = 0; i < ni; i++) std::memcpy(dq + (b * T + i0 + i) * qw + h * hd, dQ + i * hd, sizeof(float) * hd);
  });
}

}  // namespace lt
