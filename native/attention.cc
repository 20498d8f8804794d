#include "attention.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "gemm.h"
#include "pool.h"
#include "simd.h"
#include "vmath.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

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
namespace {
// Causal attention of n query rows at positions pos..pos+n-1 over key rows 0..pos+n-1 (q, out: [B, n, H·hd]; k, v:
// [B, pos+n, KV·hd]; lse: [B, H, n], or null), one pool task per (batch, head, query tile). pos = 0 is training's
// forward; pos > 0 a prefill chunk over a KV cache (attention_cached).
void forward_tiles(float* out, float* lse, const float* q, const float* k, const float* v, long B, long n, long pos, long H,
                   long KV, long hd) {
  const long qw = H * hd, kw = KV * hd, rep = H / KV, T = pos + n;
  const long ntiles = (n + BR - 1) / BR;
  const float scale = (float)(1.0 / std::sqrt((double)hd));
  // largest tiles first: the causal triangle makes late query tiles the most expensive
  parallel_for(B * H * ntiles, [&](long task) {
    QueryTile tile = query_tile(task, ntiles, n, H, rep);
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
    const float* qt = q + (b * n + i0) * qw + h * hd;
    long last = pos + i0 + ni - 1;
    for (long j0 = 0; j0 <= last; j0 += BC) {  // key tiles after the last query row are never visited
      long nj = j0 + BC < T ? BC : T - j0;
      const float* kt = k + (b * T + j0) * kw + kvh * hd;
      const float* vt = v + (b * T + j0) * kw + kvh * hd;
      sgemm_serial(ni, nj, hd, qt, qw, 1, kt, 1, kw, S, BC, false);
      fwd_softmax_tile(S, O, m, l, ni, pos + i0, j0, nj, hd, scale);
      sgemm_serial(ni, hd, nj, S, BC, 1, vt, kw, 1, O, hd, true);
    }
    for (long i = 0; i < ni; i++) {
      float* dst = out + (b * n + i0 + i) * qw + h * hd;
      float inv = 1.0f / l[i];
      for (long d = 0; d < hd; d++) dst[d] = O[i * hd + d] * inv;
      if (lse) lse[(b * H + h) * n + i0 + i] = m[i] + std::log(l[i]);
    }
  });
}
}  // namespace

void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, long B, long T, long H,
                       long KV, long hd) {
  forward_tiles(out, lse, q, k, v, B, T, 0, H, KV, hd);
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

// One query row of one head against its `len` cached keys (batch-1 decode, or a short prefill): the scores are dot
// products over the key rows read in place (the GEMV kernel, dot_rows), the softmax runs over a row buffer, and the
// output is the probability-weighted sum of the value rows, held in registers across the keys. Each (row, head) is
// one task summed in a fixed order, so results do not depend on the thread count.
namespace {

// s[j] ← exp(scale·s[j] − max) in place; returns the sum. The max and the sum use 16 lanes (no fast-math needed).
LT_CLONES float softmax_scaled_unnorm(float* s, long n, float scale) {
  typedef float v16f __attribute__((vector_size(64)));
  float mx = -INFINITY;
  long j = 0;
  if (n >= 16) {
    v16f m;
    std::memcpy(&m, s, 64);
    for (j = 16; j + 16 <= n; j += 16) {
      v16f x;
      std::memcpy(&x, s + j, 64);
      m = x > m ? x : m;
    }
    for (int t = 0; t < 16; t++) mx = m[t] > mx ? m[t] : mx;
  }
  for (; j < n; j++) mx = s[j] > mx ? s[j] : mx;
  const float off = mx * scale;
  for (long i = 0; i < n; i++) s[i] = vexp(s[i] * scale - off);
  v16f acc = {};
  j = 0;
  for (; j + 16 <= n; j += 16) {
    v16f x;
    std::memcpy(&x, s + j, 64);
    acc += x;
  }
  float sum = 0.f;
  for (int t = 0; t < 16; t++) sum += acc[t];
  for (; j < n; j++) sum += s[j];
  return sum;
}

// o[d] = inv · Σ_j p[j]·v[j·ldv + d] for d < hd (portable).
void weighted_rows_generic(float* o, const float* p, const float* v, long ldv, long n, long hd, float inv) {
  for (long d = 0; d < hd; d++) o[d] = 0.f;
  for (long j = 0; j < n; j++) {
    const float* vr = v + j * ldv;
    const float pj = p[j];
    for (long d = 0; d < hd; d++) o[d] += pj * vr[d];
  }
  for (long d = 0; d < hd; d++) o[d] *= inv;
}

#if LT_X86
// The same with 64 output lanes at a time in four zmm accumulators (masked at the end of the row).
LT_TARGET_AVX512 void weighted_rows_avx512(float* o, const float* p, const float* v, long ldv, long n, long hd, float inv) {
  for (long d0 = 0; d0 < hd; d0 += 64) {
    __mmask16 m[4];
    for (int c = 0; c < 4; c++) {
      long rem = hd - d0 - 16 * c;
      m[c] = rem >= 16 ? (__mmask16)0xFFFF : rem > 0 ? (__mmask16)((1u << rem) - 1) : (__mmask16)0;
    }
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    const float* vr = v + d0;
    for (long j = 0; j < n; j++, vr += ldv) {
      __m512 pj = _mm512_set1_ps(p[j]);
      a0 = _mm512_fmadd_ps(pj, _mm512_maskz_loadu_ps(m[0], vr), a0);
      a1 = _mm512_fmadd_ps(pj, _mm512_maskz_loadu_ps(m[1], vr + 16), a1);
      a2 = _mm512_fmadd_ps(pj, _mm512_maskz_loadu_ps(m[2], vr + 32), a2);
      a3 = _mm512_fmadd_ps(pj, _mm512_maskz_loadu_ps(m[3], vr + 48), a3);
    }
    __m512 s = _mm512_set1_ps(inv);
    _mm512_mask_storeu_ps(o + d0, m[0], _mm512_mul_ps(a0, s));
    _mm512_mask_storeu_ps(o + d0 + 16, m[1], _mm512_mul_ps(a1, s));
    _mm512_mask_storeu_ps(o + d0 + 32, m[2], _mm512_mul_ps(a2, s));
    _mm512_mask_storeu_ps(o + d0 + 48, m[3], _mm512_mul_ps(a3, s));
  }
}

// 32 output lanes at a time in four ymm accumulators (masked loads at the end of the row).
LT_TARGET_AVX2 void weighted_rows_avx2(float* o, const float* p, const float* v, long ldv, long n, long hd, float inv) {
  for (long d0 = 0; d0 < hd; d0 += 32) {
    alignas(32) int mk[32];
    for (int t = 0; t < 32; t++) mk[t] = d0 + t < hd ? -1 : 0;
    __m256i m[4];
    for (int c = 0; c < 4; c++) m[c] = _mm256_load_si256((const __m256i*)(mk + 8 * c));
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    const float* vr = v + d0;
    for (long j = 0; j < n; j++, vr += ldv) {
      __m256 pj = _mm256_set1_ps(p[j]);
      a0 = _mm256_fmadd_ps(pj, _mm256_maskload_ps(vr, m[0]), a0);
      a1 = _mm256_fmadd_ps(pj, _mm256_maskload_ps(vr + 8, m[1]), a1);
      a2 = _mm256_fmadd_ps(pj, _mm256_maskload_ps(vr + 16, m[2]), a2);
      a3 = _mm256_fmadd_ps(pj, _mm256_maskload_ps(vr + 24, m[3]), a3);
    }
    __m256 s = _mm256_set1_ps(inv);
    _mm256_maskstore_ps(o + d0, m[0], _mm256_mul_ps(a0, s));
    _mm256_maskstore_ps(o + d0 + 8, m[1], _mm256_mul_ps(a1, s));
    _mm256_maskstore_ps(o + d0 + 16, m[2], _mm256_mul_ps(a2, s));
    _mm256_maskstore_ps(o + d0 + 24, m[3], _mm256_mul_ps(a3, s));
  }
}
#endif

void weighted_rows(float* o, const float* p, const float* v, long ldv, long n, long hd, float inv) {
#if LT_X86
  int level = simd_level();
  if (level >= SIMD_AVX512) return weighted_rows_avx512(o, p, v, ldv, n, hd, inv);
  if (level >= SIMD_AVX2) return weighted_rows_avx2(o, p, v, ldv, n, hd, inv);
#endif
  weighted_rows_generic(o, p, v, ldv, n, hd, inv);
}

thread_local std::vector<float> tl_scores;

#if LT_X86
constexpr long PF_ROWS = 8;  // cache rows ahead that the row-order passes prefetch

// The row-order scores of one query row (see attention_cached_row_avx512): the K rows 8 at a time, each block's span
// of the heads [g0, g1) read once for all their query heads by `dot8` (dot_rows' block of the SIMD level in use), the
// scores into sc (head-major, len apart), then each head's softmax in place and 1/sum into inv[h].
void row_order_scores(const float* q, const float* k, long len, long g0, long g1, long rep, long hd, long kw, float scale, float* sc,
                      float* inv, void (*dot8)(long, const float* const*, const float*, float*)) {
  const long nh = (g1 - g0) * rep, span = (g1 - g0) * hd;
  for (long j0 = 0; j0 < len; j0 += 8) {
    const long nb = std::min<long>(8, len - j0);
    if (j0 + 8 + PF_ROWS <= len)
      for (long r = j0 + PF_ROWS; r < j0 + 8 + PF_ROWS; r++)
        for (long b = 0; b < span; b += 16) _mm_prefetch((const char*)(k + r * kw + g0 * hd + b), _MM_HINT_T0);
    for (long g = 0; g < g1 - g0; g++) {
      const float* w[8];
      for (int r = 0; r < 8; r++) w[r] = k + std::min(j0 + r, len - 1) * kw + (g0 + g) * hd;
      for (long r = 0; r < rep; r++) {
        const long h = g * rep + r;
        alignas(32) float s8[8];
        dot8(hd, w, q + h * hd, s8);
        for (long t = 0; t < nb; t++) sc[h * len + j0 + t] = s8[t];
      }
    }
  }
  for (long h = 0; h < nh; h++) inv[h] = 1.0f / softmax_scaled_unnorm(sc + h * len, len, scale);
}

// One query row against the cache for the KV heads [g0, g1) and their query heads (rep each; contiguous in q and
// out), reading the cache rows in order: each K row's span of those heads once for all of them (their scores into
// sc, head-major, len apart), then each V row's span once, every head's output lanes accumulated in `acc` (L1).
// Decode reads the cache as one forward stream instead of one strided stream per head. Measured (AVX-512 EPYC,
// 2026-12-02, 1 thread): a cold 110-row cache of mini-15m's shape (6 heads × 48) 49-61 → 40-43 µs a call, a warm
// 1000-row one 135-190 → 70 µs; in a 200-token decode of mini-15m, attention 123-215 → 81-101 µs a token (mini-42m,
// 2 threads: 211-231 → 165-189).
// The scores are dot_rows' (its 8-row block over 8 keys at a time, `dot8_avx512`), the softmax is
// softmax_scaled_unnorm's, the weighted sum is weighted_rows_avx512's lane for lane (Σ_j p[j]·v[j] in j order, then
// · inv): every output is bit for bit the per-head path's (one pool task per query head, dot_rows then
// weighted_rows), whatever the grouping of heads into tasks.
LT_TARGET_AVX512 void attention_cached_row_avx512(float* out, const float* q, const float* k, const float* v, long len, long g0, long g1,
                                                  long rep, long hd, long kw, float scale, float* sc, float* acc) {
  const long nh = (g1 - g0) * rep, nv = (hd + 15) / 16, span = (g1 - g0) * hd;
  const __mmask16 tail = hd % 16 ? (__mmask16)((1u << (hd % 16)) - 1) : (__mmask16)0xFFFF;
  row_order_scores(q, k, len, g0, g1, rep, hd, kw, scale, sc, acc, dot8_avx512);  // acc[h]: 1/sum, kept to the end
  float* av = acc + (nh + 15) / 16 * 16;
  for (long t = 0; t < nh * nv * 16; t++) av[t] = 0.f;
  for (long j = 0; j < len; j++) {
    const float* vr = v + j * kw + g0 * hd;
    if (j + PF_ROWS < len)
      for (long b = 0; b < span; b += 16) _mm_prefetch((const char*)(vr + PF_ROWS * kw + b), _MM_HINT_T0);
    for (long g = 0; g < g1 - g0; g++) {
      const float* vg = vr + g * hd;
      for (long r = 0; r < rep; r++) {
        const long h = g * rep + r;
        const __m512 pj = _mm512_set1_ps(sc[h * len + j]);
        float* ah = av + h * nv * 16;
        for (long c = 0; c < nv; c++) {
          const __mmask16 m = c == nv - 1 ? tail : (__mmask16)0xFFFF;
          _mm512_store_ps(ah + 16 * c, _mm512_fmadd_ps(pj, _mm512_maskz_loadu_ps(m, vg + 16 * c), _mm512_load_ps(ah + 16 * c)));
        }
      }
    }
  }
  for (long h = 0; h < nh; h++) {
    const __m512 s = _mm512_set1_ps(acc[h]);
    for (long c = 0; c < nv; c++) {
      const __mmask16 m = c == nv - 1 ? tail : (__mmask16)0xFFFF;
      _mm512_mask_storeu_ps(out + h * hd + 16 * c, m, _mm512_mul_ps(_mm512_load_ps(av + h * nv * 16 + 16 * c), s));
    }
  }
}
// The same with 8-lane vectors (AVX2): dot_rows' AVX2 block for the scores, weighted_rows_avx2's lanes for the sums.
LT_TARGET_AVX2 void attention_cached_row_avx2(float* out, const float* q, const float* k, const float* v, long len, long g0, long g1,
                                              long rep, long hd, long kw, float scale, float* sc, float* acc) {
  const long nh = (g1 - g0) * rep, nv = (hd + 7) / 8, span = (g1 - g0) * hd;
  alignas(32) int mk[8];
  for (int t = 0; t < 8; t++) mk[t] = t < hd - 8 * (nv - 1) ? -1 : 0;
  const __m256i tail = _mm256_load_si256((const __m256i*)mk), full = _mm256_set1_epi32(-1);
  row_order_scores(q, k, len, g0, g1, rep, hd, kw, scale, sc, acc, dot8_avx2);
  float* av = acc + (nh + 15) / 16 * 16;
  for (long t = 0; t < nh * nv * 8; t++) av[t] = 0.f;
  for (long j = 0; j < len; j++) {
    const float* vr = v + j * kw + g0 * hd;
    if (j + PF_ROWS < len)
      for (long b = 0; b < span; b += 16) _mm_prefetch((const char*)(vr + PF_ROWS * kw + b), _MM_HINT_T0);
    for (long g = 0; g < g1 - g0; g++) {
      const float* vg = vr + g * hd;
      for (long r = 0; r < rep; r++) {
        const long h = g * rep + r;
        const __m256 pj = _mm256_set1_ps(sc[h * len + j]);
        float* ah = av + h * nv * 8;
        for (long c = 0; c < nv; c++)
          _mm256_store_ps(ah + 8 * c, _mm256_fmadd_ps(pj, _mm256_maskload_ps(vg + 8 * c, c == nv - 1 ? tail : full), _mm256_load_ps(ah + 8 * c)));
      }
    }
  }
  for (long h = 0; h < nh; h++) {
    const __m256 s = _mm256_set1_ps(acc[h]);
    for (long c = 0; c < nv; c++)
      _mm256_maskstore_ps(out + h * hd + 8 * c, c == nv - 1 ? tail : full, _mm256_mul_ps(_mm256_load_ps(av + h * nv * 8 + 8 * c), s));
  }
}
thread_local std::vector<float> tl_acc;
#endif
// From this many query rows a call (a prefill chunk) runs attention_forward's tiles with the rows' position offset.
// At 64 rows both ways took 0.2-0.3 ms (mini-42m's shape); the tiles sum in another order (outputs within 1e-7).
constexpr long TILED_MIN_ROWS = 64;
#if LT_X86
// Up to this many query rows a call (decode: one per sequence) read the cache in row order, AVX-512 or AVX2 (forced
// onto AVX2: mini-15m's decode attention 141-213 → 83-104 µs a token, mini-42m's at positions 900-1000 2.4-3.5 →
// 1.3-1.5 ms). More rows (a prefill chunk) read it once per row from the caches, where the per-head tasks' products
// are faster (their weighted sums in registers): 200-token prefills of mini-15m took ~15% longer in row order. Both
// give the same bits.
constexpr long ROW_ORDER_MAX_ROWS = 4;
#endif
}  // namespace

void attention_cached(float* out, const float* q, const float* k, const float* v, long n, long pos, long H, long KV,
                      long hd) {
  if (n <= 0 || H <= 0 || hd <= 0) return;
  // A prefill chunk: the tiles read each block of keys and values once for a block of queries, where the tasks below
  // read every earlier row once per row (mini-42m's shape, 900 rows: 29-32 ms against 12-13 ms a layer, 1 thread).
  if (n >= TILED_MIN_ROWS) return forward_tiles(out, nullptr, q, k, v, 1, n, pos, H, KV, hd);
  const long rep = H / KV, qw = H * hd, kw = KV * hd;
  const float scale = 1.0f / std::sqrt((float)hd);
#if LT_X86
  if (simd_level() >= SIMD_AVX2 && n <= ROW_ORDER_MAX_ROWS) {
    const bool wide = simd_level() >= SIMD_AVX512;
    // Tasks: each row's KV heads in as few groups as give every thread work (n rows already do when n >= threads).
    const long nth = pool_threads();
    const long groups = std::min(KV, std::max<long>(1, (nth + n - 1) / n));
    parallel_for(n * groups, [&](long t) {
      const long i = t / groups, gi = t % groups, len = pos + i + 1;
      const long g0 = KV * gi / groups, g1 = KV * (gi + 1) / groups, nh = (g1 - g0) * rep, nv = (hd + 15) / 16;
      std::vector<float>& s = tl_scores;
      if ((long)s.size() < nh * len) s.resize(nh * len);
      std::vector<float>& a = tl_acc;
      const size_t need = (nh + 15) / 16 * 16 + nh * nv * 16 + 16;  // +16: room to align the accumulators
      if (a.size() < need) a.resize(need);
      float* acc = a.data() + ((16 - ((uintptr_t)a.data() / 4) % 16) % 16);
      (wide ? attention_cached_row_avx512 : attention_cached_row_avx2)(out + i * qw + g0 * rep * hd, q + i * qw + g0 * rep * hd, k, v, len,
                                                                        g0, g1, rep, hd, kw, scale, s.data(), acc);
    });
    return;
  }
#endif
  parallel_for(n * H, [&](long t) {
    long i = t / H, h = t % H, len = pos + i + 1;
    std::vector<float>& s = tl_scores;
    if ((long)s.size() < len) s.resize(len);
    float* sc = s.data();
    dot_rows(len, hd, k + (h / rep) * hd, kw, q + i * qw + h * hd, sc);
    float inv = 1.0f / softmax_scaled_unnorm(sc, len, scale);
    weighted_rows(out + i * qw + h * hd, sc, v + (h / rep) * hd, kw, len, hd, inv);
  });
}


// ---------------------------------------------------------------- the same over a half-precision (F16) KV cache

// The cache's rows in IEEE half (as llama.cpp's default F16 KV cache): half the bytes a decoded token reads from it.
// Scores and values are widened to float32 in registers (vcvtph2ps: exact), everything else as attention_cached.
namespace {

float h2f(uint16_t h) {
  uint32_t s = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff, bits;
  if (e == 0) {
    if (m == 0) bits = s;
    else {  // subnormal: normalise
      e = 1;
      while (!(m & 0x400)) m <<= 1, e--;
      m &= 0x3ff;
      bits = s | ((e + 112) << 23) | (m << 13);
    }
  } else if (e == 31) bits = s | 0x7f800000 | (m << 13);
  else bits = s | ((e + 112) << 23) | (m << 13);
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// out[j] = Σ_d k[j·ldk + d]·x[d] over n half rows (portable)
void dot_rows_f16_generic(long n, long hd, const uint16_t* k, long ldk, const float* x, float* out) {
  for (long j = 0; j < n; j++) {
    const uint16_t* kr = k + j * ldk;
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    long d = 0;
    for (; d + 8 <= hd; d += 8)
      for (int t = 0; t < 8; t++) acc[t] += h2f(kr[d + t]) * x[d + t];
    float s = 0;
    for (; d < hd; d++) s += h2f(kr[d]) * x[d];
    for (int t = 0; t < 8; t++) s += acc[t];
    out[j] = s;
  }
}
void weighted_rows_f16_generic(float* o, const float* p, const uint16_t* v, long ldv, long n, long hd, float inv) {
  for (long d = 0; d < hd; d++) o[d] = 0.f;
  for (long j = 0; j < n; j++) {
    const uint16_t* vr = v + j * ldv;
    const float pj = p[j];
    for (long d = 0; d < hd; d++) o[d] += pj * h2f(vr[d]);
  }
  for (long d = 0; d < hd; d++) o[d] *= inv;
}

#if LT_X86
__attribute__((target("avx512f,avx512vl,avx512bw,avx2,fma,f16c"))) void weighted_rows_f16_avx512(float* o, const float* p, const uint16_t* v,
                                                                                              long ldv, long n, long hd, float inv) {
  for (long d0 = 0; d0 < hd; d0 += 64) {
    __mmask16 m[4];
    for (int c = 0; c < 4; c++) {
      long rem = hd - d0 - 16 * c;
      m[c] = rem >= 16 ? (__mmask16)0xFFFF : rem > 0 ? (__mmask16)((1u << rem) - 1) : (__mmask16)0;
    }
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    const uint16_t* vr = v + d0;
    for (long j = 0; j < n; j++, vr += ldv) {
      _mm_prefetch((const char*)(vr + 32 * ldv), _MM_HINT_T0);  // 32 rows on (4 KB of a 64-wide head)
      _mm_prefetch((const char*)(vr + 32 * ldv + 32), _MM_HINT_T0);
      __m512 pj = _mm512_set1_ps(p[j]);
      a0 = _mm512_fmadd_ps(pj, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m[0], vr)), a0);
      a1 = _mm512_fmadd_ps(pj, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m[1], vr + 16)), a1);
      a2 = _mm512_fmadd_ps(pj, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m[2], vr + 32)), a2);
      a3 = _mm512_fmadd_ps(pj, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m[3], vr + 48)), a3);
    }
    __m512 s = _mm512_set1_ps(inv);
    _mm512_mask_storeu_ps(o + d0, m[0], _mm512_mul_ps(a0, s));
    _mm512_mask_storeu_ps(o + d0 + 16, m[1], _mm512_mul_ps(a1, s));
    _mm512_mask_storeu_ps(o + d0 + 32, m[2], _mm512_mul_ps(a2, s));
    _mm512_mask_storeu_ps(o + d0 + 48, m[3], _mm512_mul_ps(a3, s));
  }
}
// AVX2 + F16C: 8 lanes per step, the head's tail scalar
__attribute__((target("avx2,fma,f16c"))) void weighted_rows_f16_avx2(float* o, const float* p, const uint16_t* v, long ldv, long n, long hd,
                                                                    float inv) {
  const long h8 = hd / 8 * 8;
  for (long d0 = 0; d0 < h8; d0 += 8) {
    __m256 a = _mm256_setzero_ps();
    const uint16_t* vr = v + d0;
    for (long j = 0; j < n; j++, vr += ldv) a = _mm256_fmadd_ps(_mm256_set1_ps(p[j]), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)vr)), a);
    _mm256_storeu_ps(o + d0, _mm256_mul_ps(a, _mm256_set1_ps(inv)));
  }
  for (long d = h8; d < hd; d++) {
    float a = 0;
    for (long j = 0; j < n; j++) a += p[j] * h2f(v[j * ldv + d]);
    o[d] = a * inv;
  }
}
#endif

#if LT_X86
__attribute__((target("avx2,f16c"))) void widen_rows_f16c(const uint16_t* k, long ldk, long n, long hd, float* dst) {
  const long h8 = hd / 8 * 8;
  for (long j = 0; j < n; j++, k += ldk, dst += hd) {
    for (long d = 0; d < hd; d += 32) _mm_prefetch((const char*)(k + 32 * ldk + d), _MM_HINT_T0);  // 32 rows on (4 KB of a 64-wide head)
    long d = 0;
    for (; d < h8; d += 8) _mm256_storeu_ps(dst + d, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(k + d))));
    for (; d < hd; d++) dst[d] = h2f(k[d]);
  }
}
#endif

void dot_rows_f16(long n, long hd, const uint16_t* k, long ldk, const float* x, float* out) {
#if LT_X86
  static const bool f16c = __builtin_cpu_supports("f16c");
  if (simd_level() >= SIMD_AVX2 && f16c) {
    // 64 keys at a time widened into an L1 block, then the float GEMV kernel's dot products over it (its
    // reductions across rows are what a per-row kernel pays for at head size 64)
    thread_local std::vector<float> blk;
    if ((long)blk.size() < 64 * hd) blk.resize(64 * hd);
    for (long j = 0; j < n; j += 64) {
      const long c = n - j < 64 ? n - j : 64;
      widen_rows_f16c(k + j * ldk, ldk, c, hd, blk.data());
      dot_rows(c, hd, blk.data(), hd, x, out + j);
    }
    return;
  }
#endif
  dot_rows_f16_generic(n, hd, k, ldk, x, out);
}
void weighted_rows_f16(float* o, const float* p, const uint16_t* v, long ldv, long n, long hd, float inv) {
#if LT_X86
  static const bool f16c = __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx512bw");
  int level = simd_level();
  if (level >= SIMD_AVX512 && f16c) return weighted_rows_f16_avx512(o, p, v, ldv, n, hd, inv);
  if (level >= SIMD_AVX2 && __builtin_cpu_supports("f16c")) return weighted_rows_f16_avx2(o, p, v, ldv, n, hd, inv);
#endif
  weighted_rows_f16_generic(o, p, v, ldv, n, hd, inv);
}

// float → half, round to nearest even (as f32ToF16 in src/util/half.ts)
uint16_t f2h(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000, exp = (x >> 23) & 0xff, mant = x & 0x7fffff;
  if (exp == 0xff) return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 : 0));
  int e = (int)exp - 127 + 15;
  if (e >= 0x1f) return (uint16_t)(sign | 0x7c00);
  if (e <= 0) {
    if (e < -10) return (uint16_t)sign;
    mant |= 0x800000;
    int shift = 14 - e;
    uint32_t h = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) h++;
    return (uint16_t)(sign | h);
  }
  uint32_t h = ((uint32_t)e << 10) | (mant >> 13), rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
  return (uint16_t)(sign | h);
}

#if LT_X86
__attribute__((target("avx2,f16c"))) void f32_to_f16_f16c(const float* x, uint16_t* out, long n) {
  long i = 0;
  for (; i + 8 <= n; i += 8) _mm_storeu_si128((__m128i*)(out + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  for (; i < n; i++) out[i] = f2h(x[i]);
}
#endif
}  // namespace

void f32_to_f16(const float* x, uint16_t* out, long n) {
#if LT_X86
  if (simd_level() >= SIMD_AVX2 && __builtin_cpu_supports("f16c")) return f32_to_f16_f16c(x, out, n);
#endif
  for (long i = 0; i < n; i++) out[i] = f2h(x[i]);
}

void attention_cached_f16(float* out, const float* q, const float* knew, const float* vnew, uint16_t* kc, uint16_t* vc, long n,
                          long pos, long H, long KV, long hd, long maxSeq) {
  if (n <= 0 || H <= 0 || hd <= 0) return;
  const long rep = H / KV, qw = H * hd, kw = KV * hd;
  // the new rows, rounded to half, into each kv head's run of positions
  for (long i = 0; i < n; i++)
    for (long g = 0; g < KV; g++) {
      f32_to_f16(knew + i * kw + g * hd, kc + (g * maxSeq + pos + i) * hd, hd);
      f32_to_f16(vnew + i * kw + g * hd, vc + (g * maxSeq + pos + i) * hd, hd);
    }
  const float scale = 1.0f / std::sqrt((float)hd);
  parallel_for(n * H, [&](long t) {
    long i = t / H, h = t % H, len = pos + i + 1;
    std::vector<float>& s = tl_scores;
    if ((long)s.size() < len) s.resize(len);
    float* sc = s.data();
    const long g = h / rep;
    dot_rows_f16(len, hd, kc + g * maxSeq * hd, hd, q + i * qw + h * hd, sc);
    float inv = 1.0f / softmax_scaled_unnorm(sc, len, scale);
    weighted_rows_f16(out + i * qw + h * hd, sc, vc + g * maxSeq * hd, hd, len, hd, inv);
  });
}

}  // namespace lt
