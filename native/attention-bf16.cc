// Causal flash attention with bfloat16 inputs (--dtype bf16), FlashAttention's rounding points: q, k, v (after
// RoPE), dout and the saved output in bf16; scores, softmax statistics, row sums, lse, O and the gradients in float32;
// the probabilities P rounded to bf16 before P·V (forward) and Pᵀ·dO (backward), dS rounded before dS·K and dSᵀ·Q.
// The tiling and the task split are attention.cc's (64x64 tiles); each output element is summed in a fixed order,
// so results do not depend on the thread count.
// Tile products on two paths (bf16_path, bgemm.cc):
//   avx512bf16  the B operand packed as k-pairs (a 16x16 transpose of pairs, or two rows interleaved), the A operand
//               read in place where its pairs are contiguous (else interleaved too), a 6x64 vdpbf16ps micro-kernel;
//   convert     q, k, v, dout tiles widened to float32 once (exact), the rounded P and dS widened back, and the
//               float32 products of attention.cc (sgemm_serial): forward_convert, backward_convert.
// Reference: attentionBf16Ref / attentionBackwardBf16Ref in src/kernels/ops/attention.ts (it follows the forward's
// 64-key tiles: where P is rounded depends on the running maximum). Tests: test/attention-bf16.test.ts.
#include <cmath>
#include <cstring>
#include <vector>

#include "attention.h"
#include "bgemm.h"
#include "gemm.h"
#include "pool.h"
#include "simd.h"
#include "vmath.h"

#if LT_X86
#include <immintrin.h>
#define LT_TARGET_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma")))
#endif

namespace lt {
namespace {

constexpr long BR = 64;  // query rows per tile
constexpr long BC = 64;  // key rows per tile (ATTENTION_KEY_TILE in ops/attention.ts)

inline long visible(long gi, long j0, long nj) {
  long n = gi - j0 + 1;
  return n < 0 ? 0 : (n > nj ? nj : n);
}

inline uint16_t rne(float v) {  // float → bf16, round to nearest even, NaN stays a quiet NaN (branch-free: vectorises)
  uint32_t x;
  std::memcpy(&x, &v, 4);
  uint32_t r = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16, nan = (x >> 16) | 0x40;
  return (uint16_t)((x & 0x7fffffffu) > 0x7f800000u ? nan : r);
}
inline float widen(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

template <class T>
T* grow(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

struct Scratch {
  std::vector<float> S, dP, O, D, ml;
  std::vector<uint16_t> P, dS;
  std::vector<float> wq, wo, wk, wv;  // convert path: widened tiles
  std::vector<uint32_t> pa, pb;  // avx512bf16 path: packed operands
};
thread_local Scratch tl;

// ---------------------------------------------------------------- tile products

#if LT_X86
inline long up16(long n) { return (n + 15) / 16 * 16; }

// Rows r (stride rs, r < rows) of width w interleaved in pairs: dst[p*ld + c] = (R[2p][c], R[2p+1][c]) for
// p < ceil(rows/2), c < w; zero past rows and up to ld (a multiple of 16).
LT_TARGET_BF16 void pack_interleave(const uint16_t* R, long rs, long rows, long w, uint32_t* dst, long ld) {
  for (long p = 0; 2 * p < rows; p++) {
    const uint16_t* s0 = R + 2 * p * rs;
    const bool two = 2 * p + 1 < rows;
    for (long c = 0; c < ld; c += 16) {
      long rem = w - c;
      __mmask16 mk = rem >= 16 ? (__mmask16)0xFFFF : rem > 0 ? (__mmask16)((1u << rem) - 1) : (__mmask16)0;
      __m256i r0 = _mm256_maskz_loadu_epi16(mk, s0 + c);
      __m256i r1 = two ? _mm256_maskz_loadu_epi16(mk, s0 + rs + c) : _mm256_setzero_si256();
      __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_unpacklo_epi16(r0, r1)), _mm256_unpackhi_epi16(r0, r1), 1);
      _mm512_storeu_si512(dst + p * ld + c, _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0)));
    }
  }
}

// Columns stored as rows (B(k,j) = B[k + j*cs], j < n): dst[q*ld + j] = (B(2q,j), B(2q+1,j)) for q < ceil(k/2),
// zero past n up to ld (a multiple of 16) and in the odd tail's upper half.
LT_TARGET_BF16 void pack_transpose(const uint16_t* B, long cs, long n, long k, uint32_t* dst, long ld) {
  const long kfull = k / 2;
  for (long j0 = 0; j0 < ld; j0 += 16) {
    long m = n - j0 < 16 ? (n - j0 > 0 ? n - j0 : 0) : 16;
    bf16_transpose_pairs(B + j0 * cs, cs, m, kfull, dst + j0, ld, 16);
  }
  if (k & 1)
    for (long j = 0; j < ld; j++) dst[kfull * ld + j] = j < n ? (uint32_t)B[k - 1 + j * cs] : 0;
}

// One pair of k: c[i][v] += A pair w[i] · B pairs bq[16v..16v+15].
template <int R, int NV>
LT_TARGET_BF16 inline __attribute__((always_inline)) void ukr_step(__m512 (&c)[R][NV], const uint32_t* w, const uint32_t* bq) {
  __m512i b[NV];
  for (int v = 0; v < NV; v++) b[v] = _mm512_loadu_si512(bq + 16 * v);
  for (int i = 0; i < R; i++) {
    __m512bh a = (__m512bh)_mm512_set1_epi32((int)w[i]);
    for (int v = 0; v < NV; v++) c[i][v] = _mm512_dpbf16_ps(c[i][v], a, (__m512bh)b[v]);
  }
}

// C[R, n] (+)= A·Bp: A's pair q of row i is the 32 bits at A + i*ra + q*ca (bf16 units), kq pairs, then with `tail`
// a last half pair (A's 16 bits there, Bp's row kq); Bp rows of ld uint32 (≥ 16*NV); n ≤ 16*NV (last vector masked).
template <int R, int NV>
LT_TARGET_BF16 void ukr(long kq, bool tail, const uint16_t* A, long ra, long ca, const uint32_t* Bp, long ld, float* C,
                        long ldc, long n, bool acc) {
  __m512 c[R][NV];
  for (int i = 0; i < R; i++)
    for (int v = 0; v < NV; v++) c[i][v] = _mm512_setzero_ps();
  uint32_t w[R];
  for (long q = 0; q < kq; q++) {
    for (int i = 0; i < R; i++) std::memcpy(&w[i], A + i * ra + q * ca, 4);
    ukr_step<R, NV>(c, w, Bp + q * ld);
  }
  if (tail) {
    for (int i = 0; i < R; i++) w[i] = A[i * ra + kq * ca];
    ukr_step<R, NV>(c, w, Bp + kq * ld);
  }
  const long last = n - 16 * (NV - 1);
  const __mmask16 lm = last >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << last) - 1);
  for (int i = 0; i < R; i++) {
    float* p = C + i * ldc;
    for (int v = 0; v < NV; v++) {
      __mmask16 mk = v == NV - 1 ? lm : (__mmask16)0xFFFF;
      __m512 x = acc ? _mm512_add_ps(c[i][v], _mm512_maskz_loadu_ps(mk, p + 16 * v)) : c[i][v];
      _mm512_mask_storeu_ps(p + 16 * v, mk, x);
    }
  }
}

typedef void (*Ukr)(long, bool, const uint16_t*, long, long, const uint32_t*, long, float*, long, long, bool);
template <int R>
constexpr Ukr ukrs_row[4] = {ukr<R, 1>, ukr<R, 2>, ukr<R, 3>, ukr<R, 4>};
constexpr int MR = 6;
const Ukr* const UKR[MR] = {ukrs_row<1>, ukrs_row<2>, ukrs_row<3>, ukrs_row<4>, ukrs_row<5>, ukrs_row<6>};

void tile_avx512(long m, long n, long k, const uint16_t* A, long rsa, long csa, const uint16_t* B, long rsb, long csb,
                 float* C, long ldc, bool acc) {
  const long kp = (k + 1) / 2, ld = up16(n);
  uint32_t* Bp = grow(tl.pb, (size_t)kp * ld);
  if (csb == 1) pack_interleave(B, rsb, k, n, Bp, ld);
  else pack_transpose(B, csb, n, k, Bp, ld);  // rsb == 1
  const uint16_t* Aa;
  long ra, ca, kq;
  bool tail;
  if (csa == 1) {  // pairs along A's rows: read in place
    Aa = A, ra = rsa, ca = 2, kq = k / 2, tail = k & 1;
  } else {  // rsa == 1: A's rows interleaved in pairs
    const long lda = up16(m);
    uint32_t* Ap = grow(tl.pa, (size_t)kp * lda);
    pack_interleave(A, csa, k, m, Ap, lda);
    Aa = reinterpret_cast<const uint16_t*>(Ap), ra = 2, ca = 2 * lda, kq = kp, tail = false;
  }
  for (long j0 = 0; j0 < n; j0 += 64) {
    long nj = n - j0 < 64 ? n - j0 : 64;
    int nv = (int)((nj + 15) / 16);
    for (long i0 = 0; i0 < m; i0 += MR) {
      int r = (int)(m - i0 < MR ? m - i0 : MR);
      UKR[r - 1][nv - 1](kq, tail, Aa + i0 * ra, ra, ca, Bp + j0, ld, C + i0 * ldc + j0, ldc, nj, acc);
    }
  }
}
#endif

// C[m,n] (+)= A·B on this thread; A(i,k) = A[i*rsa + k*csa], B(k,j) = B[k*rsb + j*csb] bf16, C float32 (ldc). Only on
// the avx512bf16 path (vnni: bf16_path() read once per op, as it asks the CPU and cpuid traps in a VM).
void tile(bool vnni, long m, long n, long k, const uint16_t* A, long rsa, long csa, const uint16_t* B, long rsb, long csb, float* C,
          long ldc, bool acc) {
  if (m <= 0 || n <= 0) return;
#if LT_X86
  if (vnni) tile_avx512(m, n, k, A, rsa, csa, B, rsb, csb, C, ldc, acc);
#endif
}

// ---------------------------------------------------------------- element-wise parts of a tile

// lane[0] = op over lane[0..15], halving (a fixed order: vectorises)
#define LT_TREE16(lane, op)                                              \
  for (int w = 8; w >= 1; w /= 2)                                        \
    for (int t = 0; t < w; t++) lane[t] = op(lane[t], lane[t + w]);

inline float fmaxp(float a, float b) { return a > b ? a : b; }
inline float fadd(float a, float b) { return a + b; }

// Forward, after S = Q·Kᵀ (unscaled): online-softmax update of m, l (unrounded sums) and O (rescaled); P (bf16,
// row stride BC) = the probabilities relative to the new maximum, rounded; masked entries 0. S is overwritten;
// corr (≥ ni floats) is scratch. Each row's maximum and sum over 16 lanes, then the tail, then a tree of the lanes;
// the rescaling factors of all rows at once (vectorised exp).
LT_CLONES void fwd_softmax_tile(float* S, uint16_t* P, float* O, float* m, float* l, float* corr, long ni, long i0,
                                long j0, long nj, long hd, float scale) {
  for (long i = 0; i < ni; i++) {  // the new running maximum of each row (rows without a visible key keep theirs)
    const float* s = S + i * BC;
    const long n = visible(i0 + i, j0, nj);
    float lane[16];
    for (int t = 0; t < 16; t++) lane[t] = -INFINITY;
    long j = 0;
    for (; j + 16 <= n; j += 16)
      for (int t = 0; t < 16; t++) lane[t] = fmaxp(lane[t], s[j + t]);
    for (; j < n; j++) lane[0] = fmaxp(lane[0], s[j]);
    LT_TREE16(lane, fmaxp)
    const float mx = lane[0] * scale;  // scale > 0: the maximum of the scaled scores (-inf when n == 0)
    corr[i] = m[i];
    m[i] = fmaxp(mx, m[i]);
  }
  for (long i = 0; i < ni; i++) corr[i] = corr[i] == m[i] ? 1.f : vexp(corr[i] - m[i]);
  for (long i = 0; i < ni; i++) {
    float* s = S + i * BC;
    uint16_t* p = P + i * BC;
    const long n = visible(i0 + i, j0, nj);
    const float mi = m[i];
    for (long j = 0; j < n; j++) s[j] = vexp(s[j] * scale - mi);
    float lane[16];
    for (int t = 0; t < 16; t++) lane[t] = 0.f;
    long j = 0;
    for (; j + 16 <= n; j += 16)
      for (int t = 0; t < 16; t++) lane[t] += s[j + t];
    for (; j < n; j++) lane[0] += s[j];
    LT_TREE16(lane, fadd)
    for (j = 0; j < n; j++) p[j] = rne(s[j]);
    for (j = n; j < nj; j++) p[j] = 0;
    l[i] = l[i] * corr[i] + lane[0];
    if (corr[i] != 1.f) {
      float* o = O + i * hd;
      const float c = corr[i];
      for (long d = 0; d < hd; d++) o[d] *= c;
    }
  }
}

// Backward, after S = Q·Kᵀ and dP = dO·Vᵀ (unscaled): P = bf16(exp(S·scale − lse)), dS = bf16(p·(dP − D)·scale)
// from the unrounded p; masked entries 0. S and dP are overwritten.
LT_CLONES void bwd_probs_tile(float* S, float* dP, uint16_t* P, uint16_t* dS, const float* lse, const float* D, long ni,
                              long i0, long j0, long nj, float scale) {
  for (long i = 0; i < ni; i++) {
    float* s = S + i * BC;
    float* dp = dP + i * BC;
    uint16_t* pr = P + i * BC;
    uint16_t* dr = dS + i * BC;
    long n = visible(i0 + i, j0, nj);
    float L = lse[i], Di = D[i];
    for (long j = 0; j < n; j++) {
      float p = vexp(s[j] * scale - L);
      s[j] = p;
      dp[j] = p * (dp[j] - Di) * scale;
    }
    for (long j = 0; j < n; j++) {
      pr[j] = rne(s[j]);
      dr[j] = rne(dp[j]);
    }
    for (long j = n; j < nj; j++) pr[j] = dr[j] = 0;
  }
}

// D[i] = Σ_d dO[i,d]·O[i,d] over bf16 rows (16 float32 lanes, then the tail, then the lanes: attention.cc's order)
LT_CLONES void row_dots_bf16(float* D, const uint16_t* a, const uint16_t* b, long ld, long ni, long hd) {
  for (long i = 0; i < ni; i++) {
    const uint16_t* x = a + i * ld;
    const uint16_t* y = b + i * ld;
    float acc[16];
    for (int t = 0; t < 16; t++) acc[t] = 0.f;
    long d = 0;
    for (; d + 16 <= hd; d += 16)
      for (int t = 0; t < 16; t++) acc[t] += widen(x[d + t]) * widen(y[d + t]);
    float s = 0.f;
    for (; d < hd; d++) s += widen(x[d]) * widen(y[d]);
    for (int t = 0; t < 16; t++) s += acc[t];
    D[i] = s;
  }
}

struct QueryTile {
  long b, h, kvh, i0, ni;
};
QueryTile query_tile(long task, long ntiles, long T, long H, long rep) {
  long it = ntiles - 1 - task % ntiles;
  long bh = task / ntiles, h = bh % H, i0 = it * BR;
  return {bh / H, h, h / rep, i0, i0 + BR < T ? BR : T - i0};
}

// ---------------------------------------------------------------- the convert path

// rows [n, w] of bf16 (stride ld) widened into dst [n, w]
void widen_rows(const uint16_t* src, long ld, long n, long w, float* dst) {
  for (long r = 0; r < n; r++)
    for (long d = 0; d < w; d++) dst[r * w + d] = widen(src[r * ld + d]);
}
// the rounded tile (bf16, row stride BC) widened back into x (float, the same stride): the float32 products then
// multiply exactly the bf16 values
void widen_tile(const uint16_t* p, float* x, long ni, long nj) {
  for (long i = 0; i < ni; i++)
    for (long j = 0; j < nj; j++) x[i * BC + j] = widen(p[i * BC + j]);
}

// attention_forward_bf16 without AVX512_BF16: each tile widened once (exact) and the float32 products of
// attention.cc (sgemm_serial), with the same rounding of P.
void forward_convert(float* out, float* lse, const uint16_t* q, const uint16_t* k, const uint16_t* v, long B, long T,
                     long H, long KV, long hd) {
  const long qw = H * hd, kw = KV * hd, rep = H / KV;
  const long ntiles = (T + BR - 1) / BR;
  const float scale = (float)(1.0 / std::sqrt((double)hd));
  parallel_for(B * H * ntiles, [&](long task) {
    QueryTile t = query_tile(task, ntiles, T, H, rep);
    const long b = t.b, h = t.h, kvh = t.kvh, i0 = t.i0, ni = t.ni;
    float* S = grow(tl.S, (size_t)BR * BC);
    uint16_t* P = grow(tl.P, (size_t)BR * BC);
    float* O = grow(tl.O, (size_t)BR * hd);
    float* Qf = grow(tl.wq, (size_t)BR * hd);
    float* Kf = grow(tl.wk, (size_t)BC * hd);
    float* Vf = grow(tl.wv, (size_t)BC * hd);
    float* m = grow(tl.ml, 3 * BR);
    float* l = m + BR;
    for (long i = 0; i < ni; i++) m[i] = -INFINITY, l[i] = 0.f;
    std::memset(O, 0, sizeof(float) * ni * hd);
    widen_rows(q + (b * T + i0) * qw + h * hd, qw, ni, hd, Qf);
    const long last = i0 + ni - 1;
    for (long j0 = 0; j0 <= last; j0 += BC) {
      long nj = j0 + BC < T ? BC : T - j0;
      widen_rows(k + (b * T + j0) * kw + kvh * hd, kw, nj, hd, Kf);
      widen_rows(v + (b * T + j0) * kw + kvh * hd, kw, nj, hd, Vf);
      sgemm_serial(ni, nj, hd, Qf, hd, 1, Kf, 1, hd, S, BC, false);
      fwd_softmax_tile(S, P, O, m, l, m + 2 * BR, ni, i0, j0, nj, hd, scale);
      widen_tile(P, S, ni, nj);
      sgemm_serial(ni, hd, nj, S, BC, 1, Vf, hd, 1, O, hd, true);
    }
    for (long i = 0; i < ni; i++) {
      float* dst = out + (b * T + i0 + i) * qw + h * hd;
      float inv = 1.0f / l[i];
      for (long d = 0; d < hd; d++) dst[d] = O[i * hd + d] * inv;
      lse[(b * H + h) * T + i0 + i] = m[i] + std::log(l[i]);
    }
  });
}

// attention_backward_bf16 without AVX512_BF16, likewise.
void backward_convert(float* dq, float* dk, float* dv, const uint16_t* dout, const uint16_t* q, const uint16_t* k,
                      const uint16_t* v, const uint16_t* out, const float* lse, long B, long T, long H, long KV, long hd) {
  const long qw = H * hd, kw = KV * hd, rep = H / KV;
  const long ntiles = (T + BC - 1) / BC;
  const float scale = (float)(1.0 / std::sqrt((double)hd));
  parallel_for(B * KV * ntiles, [&](long task) {
    long jt = task % ntiles;
    long bk = task / ntiles, b = bk / KV, kvh = bk % KV;
    long j0 = jt * BC, nj = j0 + BC < T ? BC : T - j0;
    float* S = grow(tl.S, (size_t)BR * BC);
    float* dP = grow(tl.dP, (size_t)BR * BC);
    uint16_t* P = grow(tl.P, (size_t)BR * BC);
    uint16_t* dS = grow(tl.dS, (size_t)BR * BC);
    float* dK = grow(tl.O, (size_t)2 * BC * hd);
    float* dV = dK + BC * hd;
    float* D = grow(tl.D, BR);
    float* Qf = grow(tl.wq, (size_t)BR * hd);
    float* dOf = grow(tl.wo, (size_t)BR * hd);
    float* Kf = grow(tl.wk, (size_t)BC * hd);
    float* Vf = grow(tl.wv, (size_t)BC * hd);
    std::memset(dK, 0, sizeof(float) * 2 * BC * hd);
    widen_rows(k + (b * T + j0) * kw + kvh * hd, kw, nj, hd, Kf);
    widen_rows(v + (b * T + j0) * kw + kvh * hd, kw, nj, hd, Vf);
    for (long h = kvh * rep; h < (kvh + 1) * rep; h++) {
      for (long i0 = (j0 / BR) * BR; i0 < T; i0 += BR) {
        long ni = i0 + BR < T ? BR : T - i0;
        const uint16_t* dot = dout + (b * T + i0) * qw + h * hd;
        row_dots_bf16(D, dot, out + (b * T + i0) * qw + h * hd, qw, ni, hd);
        widen_rows(q + (b * T + i0) * qw + h * hd, qw, ni, hd, Qf);
        widen_rows(dot, qw, ni, hd, dOf);
        sgemm_serial(ni, nj, hd, Qf, hd, 1, Kf, 1, hd, S, BC, false);
        sgemm_serial(ni, nj, hd, dOf, hd, 1, Vf, 1, hd, dP, BC, false);
        bwd_probs_tile(S, dP, P, dS, lse + (b * H + h) * T + i0, D, ni, i0, j0, nj, scale);
        widen_tile(P, S, ni, nj);
        widen_tile(dS, dP, ni, nj);
        sgemm_serial(nj, hd, ni, S, 1, BC, dOf, hd, 1, dV, hd, true);
        sgemm_serial(nj, hd, ni, dP, 1, BC, Qf, hd, 1, dK, hd, true);
      }
    }
    for (long j = 0; j < nj; j++) {
      std::memcpy(dk + (b * T + j0 + j) * kw + kvh * hd, dK + j * hd, sizeof(float) * hd);
      std::memcpy(dv + (b * T + j0 + j) * kw + kvh * hd, dV + j * hd, sizeof(float) * hd);
    }
  });
  const long qtiles = (T + BR - 1) / BR;
  parallel_for(B * H * qtiles, [&](long task) {
    QueryTile t = query_tile(task, qtiles, T, H, rep);
    const long b = t.b, h = t.h, kvh = t.kvh, i0 = t.i0, ni = t.ni;
    float* S = grow(tl.S, (size_t)BR * BC);
    float* dP = grow(tl.dP, (size_t)BR * BC);
    uint16_t* P = grow(tl.P, (size_t)BR * BC);
    uint16_t* dS = grow(tl.dS, (size_t)BR * BC);
    float* dQ = grow(tl.O, (size_t)BR * hd);
    float* D = grow(tl.D, BR);
    float* Qf = grow(tl.wq, (size_t)BR * hd);
    float* dOf = grow(tl.wo, (size_t)BR * hd);
    float* Kf = grow(tl.wk, (size_t)BC * hd);
    float* Vf = grow(tl.wv, (size_t)BC * hd);
    std::memset(dQ, 0, sizeof(float) * ni * hd);
    const uint16_t* dot = dout + (b * T + i0) * qw + h * hd;
    row_dots_bf16(D, dot, out + (b * T + i0) * qw + h * hd, qw, ni, hd);
    widen_rows(q + (b * T + i0) * qw + h * hd, qw, ni, hd, Qf);
    widen_rows(dot, qw, ni, hd, dOf);
    const long last = i0 + ni - 1;
    for (long j0 = 0; j0 <= last; j0 += BC) {
      long nj = j0 + BC < T ? BC : T - j0;
      widen_rows(k + (b * T + j0) * kw + kvh * hd, kw, nj, hd, Kf);
      widen_rows(v + (b * T + j0) * kw + kvh * hd, kw, nj, hd, Vf);
      sgemm_serial(ni, nj, hd, Qf, hd, 1, Kf, 1, hd, S, BC, false);
      sgemm_serial(ni, nj, hd, dOf, hd, 1, Vf, 1, hd, dP, BC, false);
      bwd_probs_tile(S, dP, P, dS, lse + (b * H + h) * T + i0, D, ni, i0, j0, nj, scale);
      widen_tile(dS, dP, ni, nj);
      sgemm_serial(ni, hd, nj, dP, BC, 1, Kf, hd, 1, dQ, hd, true);
    }
    for (long i = 0; i < ni; i++) std::memcpy(dq + (b * T + i0 + i) * qw + h * hd, dQ + i * hd, sizeof(float) * hd);
  });
}

}  // namespace

// S = Q_i·K_jᵀ, O_i += P·V_j per key tile, as attention_forward.
void attention_forward_bf16(float* out, float* lse, const uint16_t* q, const uint16_t* k, const uint16_t* v, long B,
                            long T, long H, long KV, long hd) {
  const long qw = H * hd, kw = KV * hd, rep = H / KV;
  const long ntiles = (T + BR - 1) / BR;
  const float scale = (float)(1.0 / std::sqrt((double)hd));
  const bool vnni = bf16_path() == BF16_AVX512;
  if (!vnni) return forward_convert(out, lse, q, k, v, B, T, H, KV, hd);
  parallel_for(B * H * ntiles, [&](long task) {
    QueryTile t = query_tile(task, ntiles, T, H, rep);
    const long b = t.b, h = t.h, kvh = t.kvh, i0 = t.i0, ni = t.ni;
    float* S = grow(tl.S, (size_t)BR * BC);
    uint16_t* P = grow(tl.P, (size_t)BR * BC);
    float* O = grow(tl.O, (size_t)BR * hd);
    float* m = grow(tl.ml, 3 * BR);
    float* l = m + BR;
    for (long i = 0; i < ni; i++) m[i] = -INFINITY, l[i] = 0.f;
    std::memset(O, 0, sizeof(float) * ni * hd);
    const uint16_t* qt = q + (b * T + i0) * qw + h * hd;
    const long last = i0 + ni - 1;
    for (long j0 = 0; j0 <= last; j0 += BC) {  // key tiles after the last query row are never visited
      long nj = j0 + BC < T ? BC : T - j0;
      const uint16_t* kt = k + (b * T + j0) * kw + kvh * hd;
      const uint16_t* vt = v + (b * T + j0) * kw + kvh * hd;
      tile(vnni, ni, nj, hd, qt, qw, 1, kt, 1, kw, S, BC, false);
      fwd_softmax_tile(S, P, O, m, l, m + 2 * BR, ni, i0, j0, nj, hd, scale);
      tile(vnni, ni, hd, nj, P, BC, 1, vt, kw, 1, O, hd, true);
    }
    for (long i = 0; i < ni; i++) {
      float* dst = out + (b * T + i0 + i) * qw + h * hd;
      float inv = 1.0f / l[i];
      for (long d = 0; d < hd; d++) dst[d] = O[i * hd + d] * inv;
      lse[(b * H + h) * T + i0 + i] = m[i] + std::log(l[i]);
    }
  });
}

// Two passes as attention_backward: dK, dV per (batch, kv head, key tile) over the group's heads and the query tiles
// from the key tile on; dQ per (batch, head, query tile).
void attention_backward_bf16(float* dq, float* dk, float* dv, const uint16_t* dout, const uint16_t* q, const uint16_t* k,
                             const uint16_t* v, const uint16_t* out, const float* lse, long B, long T, long H, long KV,
                             long hd) {
  const long qw = H * hd, kw = KV * hd, rep = H / KV;
  const long ntiles = (T + BC - 1) / BC;
  const float scale = (float)(1.0 / std::sqrt((double)hd));
  const bool vnni = bf16_path() == BF16_AVX512;
  if (!vnni) return backward_convert(dq, dk, dv, dout, q, k, v, out, lse, B, T, H, KV, hd);
  parallel_for(B * KV * ntiles, [&](long task) {
    long jt = task % ntiles;
    long bk = task / ntiles, b = bk / KV, kvh = bk % KV;
    long j0 = jt * BC, nj = j0 + BC < T ? BC : T - j0;
    float* S = grow(tl.S, (size_t)BR * BC);
    float* dP = grow(tl.dP, (size_t)BR * BC);
    uint16_t* P = grow(tl.P, (size_t)BR * BC);
    uint16_t* dS = grow(tl.dS, (size_t)BR * BC);
    float* dK = grow(tl.O, (size_t)2 * BC * hd);
    float* dV = dK + BC * hd;
    float* D = grow(tl.D, BR);
    std::memset(dK, 0, sizeof(float) * 2 * BC * hd);
    const uint16_t* kt = k + (b * T + j0) * kw + kvh * hd;
    const uint16_t* vt = v + (b * T + j0) * kw + kvh * hd;
    for (long h = kvh * rep; h < (kvh + 1) * rep; h++) {
      for (long i0 = (j0 / BR) * BR; i0 < T; i0 += BR) {
        long ni = i0 + BR < T ? BR : T - i0;
        const uint16_t* qt = q + (b * T + i0) * qw + h * hd;
        const uint16_t* dot = dout + (b * T + i0) * qw + h * hd;
        const uint16_t* ot = out + (b * T + i0) * qw + h * hd;
        row_dots_bf16(D, dot, ot, qw, ni, hd);
        tile(vnni, ni, nj, hd, qt, qw, 1, kt, 1, kw, S, BC, false);
        tile(vnni, ni, nj, hd, dot, qw, 1, vt, 1, kw, dP, BC, false);
        bwd_probs_tile(S, dP, P, dS, lse + (b * H + h) * T + i0, D, ni, i0, j0, nj, scale);
        tile(vnni, nj, hd, ni, P, 1, BC, dot, qw, 1, dV, hd, true);
        tile(vnni, nj, hd, ni, dS, 1, BC, qt, qw, 1, dK, hd, true);
      }
    }
    for (long j = 0; j < nj; j++) {
      std::memcpy(dk + (b * T + j0 + j) * kw + kvh * hd, dK + j * hd, sizeof(float) * hd);
      std::memcpy(dv + (b * T + j0 + j) * kw + kvh * hd, dV + j * hd, sizeof(float) * hd);
    }
  });
  const long qtiles = (T + BR - 1) / BR;
  parallel_for(B * H * qtiles, [&](long task) {
    QueryTile t = query_tile(task, qtiles, T, H, rep);
    const long b = t.b, h = t.h, kvh = t.kvh, i0 = t.i0, ni = t.ni;
    float* S = grow(tl.S, (size_t)BR * BC);
    float* dP = grow(tl.dP, (size_t)BR * BC);
    uint16_t* P = grow(tl.P, (size_t)BR * BC);
    uint16_t* dS = grow(tl.dS, (size_t)BR * BC);
    float* dQ = grow(tl.O, (size_t)BR * hd);
    float* D = grow(tl.D, BR);
    std::memset(dQ, 0, sizeof(float) * ni * hd);
    const uint16_t* qt = q + (b * T + i0) * qw + h * hd;
    const uint16_t* dot = dout + (b * T + i0) * qw + h * hd;
    const uint16_t* ot = out + (b * T + i0) * qw + h * hd;
    row_dots_bf16(D, dot, ot, qw, ni, hd);
    const long last = i0 + ni - 1;
    for (long j0 = 0; j0 <= last; j0 += BC) {
      long nj = j0 + BC < T ? BC : T - j0;
      const uint16_t* kt = k + (b * T + j0) * kw + kvh * hd;
      const uint16_t* vt = v + (b * T + j0) * kw + kvh * hd;
      tile(vnni, ni, nj, hd, qt, qw, 1, kt, 1, kw, S, BC, false);
      tile(vnni, ni, nj, hd, dot, qw, 1, vt, 1, kw, dP, BC, false);
      bwd_probs_tile(S, dP, P, dS, lse + (b * H + h) * T + i0, D, ni, i0, j0, nj, scale);
      tile(vnni, ni, hd, nj, dS, BC, 1, kt, kw, 1, dQ, hd, true);
    }
    for (long i = 0; i < ni; i++) std::memcpy(dq + (b * T + i0 + i) * qw + h * hd, dQ + i * hd, sizeof(float) * hd);
  });
}

}  // namespace lt
