// Products against quantized weights: out[M,N] (+)= x[M,K]·wᵀ with w [N,K] in Q8_0, Q4_0, Q4_K or Q6_K blocks or BF16 (the
// layouts: src/kernels/ops/quant.ts, which holds the reference these kernels are tested against in
// test/quant.test.ts on every SIMD path). As llama.cpp: each row of x is quantized to int8 per block of 32 (scale
// max|x|/127, in float32), each block's dot product is an integer sum (u8×s8 or s8×s8 multiply-adds; vpdpbusd
// with AVX-512 VNNI), scaled by the weight's and the activation's block scales. Batch-1 decode reads every weight
// byte once per token, so its speed is the bytes per weight; rows of w are spread over the pool, and with several
// rows of x each group of 8 weight rows is reused across all of them while it sits in L1. From QUANT_GEMM_ROWS rows
// of x on (prefill, which is bound by arithmetic rather than by weight bytes) the weights are dequantized a chunk of
// rows at a time and multiplied in float32 by the packed SGEMM, as the reference does.
#include "quant.h"

#include <cmath>
#include <vector>

#include "gemm.h"
#include "pool.h"
#include "simd.h"

#if LT_X86
#include <immintrin.h>
#endif

namespace lt {

namespace {

using DotFn = float (*)(const uint8_t* w, const int8_t* q, const float* d, const int32_t* s, long nb);

}  // namespace

float half_to_float(const uint8_t* p) {
  uint32_t h = p[0] | p[1] << 8;
  uint32_t sign = (h & 0x8000u) << 16, e = (h >> 10) & 31, m = h & 0x3ff, bits;
  if (e == 0) {
    float f = (float)m * (1.0f / 16777216.0f);  // subnormal (or zero): m · 2^-24, exact
    return (h & 0x8000u) ? -f : f;
  }
  if (e == 31) bits = sign | 0x7f800000u | (m << 13);
  else bits = sign | ((e + 112) << 23) | (m << 13);
  float f;
  __builtin_memcpy(&f, &bits, 4);
  return f;
}

namespace {

inline float bf16_to_float(const uint8_t* p) {
  uint32_t bits = (uint32_t)(p[0] | p[1] << 8) << 16;
  float f;
  __builtin_memcpy(&f, &bits, 4);
  return f;
}

// sub-block i's 6-bit scale and min of a Q4_K block's packed scales (ggml's get_scale_min_k4)
inline void q4k_scales(const uint8_t* p, uint8_t* sc, uint8_t* mn) {
  for (int i = 0; i < 4; i++) sc[i] = p[i] & 63, mn[i] = p[i + 4] & 63;
  for (int i = 4; i < 8; i++) sc[i] = (p[i + 4] & 15) | ((p[i - 4] >> 6) << 4), mn[i] = (p[i + 4] >> 4) | ((p[i] >> 6) << 4);
}

// ---- portable ----

float dot_q8_0_generic(const uint8_t* w, const int8_t* q, const float* d, const int32_t*, long nb) {
  float acc = 0;
  for (long b = 0; b < nb; b++, w += 34) {
    const int8_t* wq = (const int8_t*)(w + 2);
    int32_t sum = 0;
    for (int j = 0; j < 32; j++) sum += wq[j] * q[32 * b + j];
    acc += half_to_float(w) * d[b] * (float)sum;
  }
  return acc;
}

float dot_q4_0_generic(const uint8_t* w, const int8_t* q, const float* d, const int32_t* s, long nb) {
  float acc = 0;
  for (long b = 0; b < nb; b++, w += 18) {
    int32_t sum = 0;
    for (int j = 0; j < 16; j++) sum += (w[2 + j] & 15) * q[32 * b + j] + (w[2 + j] >> 4) * q[32 * b + 16 + j];
    acc += half_to_float(w) * d[b] * (float)(sum - 8 * s[b]);
  }
  return acc;
}

float dot_q4_k_generic(const uint8_t* w, const int8_t* q, const float* d, const int32_t* s, long nb) {
  float acc = 0;
  for (long B = 0; B < nb / 8; B++, w += 144) {
    float dd = half_to_float(w), dm = half_to_float(w + 2);
    uint8_t sc[8], mn[8];
    q4k_scales(w + 4, sc, mn);
    for (int i = 0; i < 8; i++) {
      long b = 8 * B + i;
      const uint8_t* qs = w + 16 + 32 * (i >> 1);
      int32_t sum = 0;
      for (int j = 0; j < 32; j++) sum += (i & 1 ? qs[j] >> 4 : qs[j] & 15) * q[32 * b + j];
      acc += d[b] * (dd * sc[i] * (float)sum - dm * mn[i] * (float)s[b]);
    }
  }
  return acc;
}

float dot_q6_k_generic(const uint8_t* w, const int8_t* q, const float* d, const int32_t*, long nb) {
  float acc = 0;
  for (long B = 0; B < nb / 8; B++, w += 210) {
    const int8_t* sc = (const int8_t*)(w + 192);
    float dd = half_to_float(w + 208);
    for (int g = 0; g < 16; g++) {
      int32_t sum = 0;
      for (int j = 0; j < 16; j++) {
        int e = 16 * g + j, h = e >> 7, r = e & 127, k = r >> 5, l = r & 31;
        int lo = w[64 * h + l + 32 * (k & 1)], hi = w[128 + 32 * h + l];
        int v = ((k < 2 ? lo & 15 : lo >> 4) | (((hi >> (2 * k)) & 3) << 4)) - 32;
        sum += v * q[256 * B + e];
      }
      acc += dd * sc[g] * d[(256 * B + 16 * g) >> 5] * (float)sum;
    }
  }
  return acc;
}

float dot_bf16_generic(const uint8_t* w, const float* x, long K) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  long i = 0;
  for (; i + 8 <= K; i += 8)
    for (int l = 0; l < 8; l++) acc[l] += bf16_to_float(w + 2 * (i + l)) * x[i + l];
  float s = 0;
  for (; i < K; i++) s += bf16_to_float(w + 2 * i) * x[i];
  for (int l = 0; l < 8; l++) s += acc[l];
  return s;
}

#if LT_X86
namespace avx2 {
#define QT __attribute__((target("avx2,fma,f16c")))
#define LT_Q_VNNI 0
#include "quant-simd.inc"
#undef LT_Q_VNNI
#undef QT
}  // namespace avx2
namespace vnni {
#define QT __attribute__((target("avx512f,avx512vl,avx512vnni,avx2,fma,f16c")))
#define LT_Q_VNNI 1
#include "quant-simd.inc"
#undef LT_Q_VNNI
#undef QT
}  // namespace vnni
#endif

DotFn dot_for(QuantKind kind) {
  static const DotFn generic[] = {dot_q8_0_generic, dot_q4_0_generic, dot_q4_k_generic, dot_q6_k_generic};
#if LT_X86
  static const DotFn a2[] = {avx2::dot_q8_0, avx2::dot_q4_0, avx2::dot_q4_k, avx2::dot_q6_k};
  static const DotFn v[] = {vnni::dot_q8_0, vnni::dot_q4_0, vnni::dot_q4_k, vnni::dot_q6_k};
  static const bool has_vnni = __builtin_cpu_supports("avx512vnni");
  int level = simd_level();
  if (level >= SIMD_AVX512 && has_vnni) return v[kind];
  if (level >= SIMD_AVX2 && __builtin_cpu_supports("f16c")) return a2[kind];
#endif
  return generic[kind];
}

using DotF32Fn = float (*)(const uint8_t* w, const float* x, long K);

DotF32Fn dot_bf16_for() {
#if LT_X86
  if (simd_level() >= SIMD_AVX2) return avx2::dot_bf16;
#endif
  return dot_bf16_generic;
}

}  // namespace

namespace {

void quantize_row_generic(const float* x, long K, int8_t* q, float* d, int32_t* s) {
  for (long b = 0; b < K / 32; b++) {
    const float* xb = x + 32 * b;
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = std::fmax(amax, std::fabs(xb[j]));
    float db = amax / 127.0f, id = db != 0 ? 1.0f / db : 0.0f;
    int32_t sum = 0;
    for (int j = 0; j < 32; j++) {
      int v = (int)std::roundf(xb[j] * id);
      q[32 * b + j] = (int8_t)v;
      sum += v;
    }
    d[b] = db;
    s[b] = sum;
  }
}

#if LT_X86
// The same bit for bit with AVX2 (decode quantizes a row per product; the scalar roundf loop cost about a third of
// a 512×1376 product): max|x| by vmaxps (a NaN |x| is skipped, as fmax skips it), the same float scale and product,
// roundf (half away from zero) as trunc(t) plus sign(t) where |t − trunc(t)| ≥ 0.5 (t − trunc(t) is exact).
__attribute__((target("avx2,fma"))) void quantize_row_avx2(const float* x, long K, int8_t* q, float* d, int32_t* s) {
  const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)), half = _mm256_set1_ps(0.5f);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (long b = 0; b < K / 32; b++) {
    const float* xb = x + 32 * b;
    __m256 v[4], m = _mm256_setzero_ps();
    for (int i = 0; i < 4; i++) v[i] = _mm256_loadu_ps(xb + 8 * i), m = _mm256_max_ps(_mm256_and_ps(v[i], absmask), m);
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    float amax = _mm_cvtss_f32(m4);
    float db = amax / 127.0f, id = db != 0 ? 1.0f / db : 0.0f;
    const __m256 idv = _mm256_set1_ps(id);
    __m256i r[4], sum = _mm256_setzero_si256();
    for (int i = 0; i < 4; i++) {
      __m256 t = _mm256_mul_ps(v[i], idv), tr = _mm256_round_ps(t, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
      __m256 frac = _mm256_and_ps(_mm256_sub_ps(t, tr), absmask);
      __m256 step = _mm256_and_ps(_mm256_cmp_ps(frac, half, _CMP_GE_OQ), _mm256_or_ps(_mm256_andnot_ps(absmask, t), _mm256_set1_ps(1.0f)));
      r[i] = _mm256_cvttps_epi32(_mm256_add_ps(tr, step));
      sum = _mm256_add_epi32(sum, r[i]);
    }
    __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(r[0], r[1]), _mm256_packs_epi32(r[2], r[3]));
    _mm256_storeu_si256((__m256i*)(q + 32 * b), _mm256_permutevar8x32_epi32(p, order));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
    d[b] = db;
    s[b] = _mm_cvtsi128_si32(s4);
  }
}
#endif

}  // namespace

// one row of activations → int8 per block of 32, as quantizeActivations in src/kernels/ops/quant.ts (bit for bit)
void quantize_row(const float* x, long K, int8_t* q, float* d, int32_t* s) {
#if LT_X86
  if (simd_level() >= SIMD_AVX2) return quantize_row_avx2(x, K, q, d, s);
#endif
  quantize_row_generic(x, K, q, d, s);
}

namespace {

// one weight row of K values → float32, as dequantize in src/kernels/ops/quant.ts (loops the compiler vectorises)
LT_CLONES void dequant_row(int kind, const uint8_t* w, float* y, long K) {
  switch (kind) {
    case QK_Q8_0:
      for (long b = 0; b < K / 32; b++, w += 34, y += 32) {
        float d = half_to_float(w);
        const int8_t* q = (const int8_t*)(w + 2);
        for (int j = 0; j < 32; j++) y[j] = d * (float)q[j];
      }
      break;
    case QK_Q4_0:
      for (long b = 0; b < K / 32; b++, w += 18, y += 32) {
        float d = half_to_float(w);
        for (int j = 0; j < 16; j++) y[j] = d * (float)((w[2 + j] & 15) - 8), y[16 + j] = d * (float)((w[2 + j] >> 4) - 8);
      }
      break;
    case QK_Q4_K:
      for (long B = 0; B < K / 256; B++, w += 144) {
        float dd = half_to_float(w), dm = half_to_float(w + 2);
        uint8_t sc[8], mn[8];
        q4k_scales(w + 4, sc, mn);
        for (int c = 0; c < 4; c++, y += 64) {
          const uint8_t* q = w + 16 + 32 * c;
          float d1 = dd * sc[2 * c], m1 = dm * mn[2 * c], d2 = dd * sc[2 * c + 1], m2 = dm * mn[2 * c + 1];
          for (int l = 0; l < 32; l++) y[l] = d1 * (float)(q[l] & 15) - m1, y[32 + l] = d2 * (float)(q[l] >> 4) - m2;
        }
      }
      break;
    case QK_BF16:
      for (long i = 0; i < K; i++) y[i] = bf16_to_float(w + 2 * i);
      break;
    default:  // Q6_K
      for (long B = 0; B < K / 256; B++, w += 210) {
        const int8_t* sc = (const int8_t*)(w + 192);
        float dd = half_to_float(w + 208);
        for (int h = 0; h < 2; h++, y += 128) {
          const uint8_t *ql = w + 64 * h, *qh = w + 128 + 32 * h;
          const int8_t* s = sc + 8 * h;
          for (int l = 0; l < 32; l++) {
            int is = l / 16;
            y[l] = dd * s[is] * (float)(((ql[l] & 15) | ((qh[l] & 3) << 4)) - 32);
            y[32 + l] = dd * s[is + 2] * (float)(((ql[32 + l] & 15) | (((qh[l] >> 2) & 3) << 4)) - 32);
            y[64 + l] = dd * s[is + 4] * (float)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
            y[96 + l] = dd * s[is + 6] * (float)(((ql[32 + l] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
          }
        }
      }
  }
}

const long QK_BYTES[] = {34, 18, 144, 210, 2};
const long QK_SIZE[] = {32, 32, 256, 256, 1};

}  // namespace

QuantizedRows quantize_rows(const float* x, long M, long K) {
  const long nb = K / 32;
  thread_local std::vector<int8_t> qv;
  thread_local std::vector<float> dv;
  thread_local std::vector<int32_t> sv;
  if ((long)qv.size() < M * K) qv.resize(M * K);
  if ((long)dv.size() < M * nb + 1) dv.resize(M * nb + 1), sv.resize(M * nb + 1);
  int8_t* q = qv.data();
  float* d = dv.data();
  int32_t* s = sv.data();
  if (M * K >= (1L << 15)) parallel_for(M, [&](long m) { quantize_row(x + m * K, K, q + m * K, d + m * nb, s + m * nb); });
  else for (long m = 0; m < M; m++) quantize_row(x + m * K, K, q + m * K, d + m * nb, s + m * nb);
  return {q, d, s};
}

#if LT_X86
namespace {
// q4k_scales in two 64-bit words (8 scales, 8 mins, one byte each), unpacked in 32-bit words as ggml does: what the
// 4-row Q4_K kernels widen to float lanes (byte by byte through memory held them to 1.25x the per-row kernel)
inline void q4k_scales_packed(const uint8_t* p, int64_t* sc8, int64_t* mn8) {
  uint32_t u[3];
  __builtin_memcpy(u, p, 12);
  const uint32_t k1 = 0x3f3f3f3f, k2 = 0x0f0f0f0f, k3 = 0x03030303;
  const uint32_t sc_lo = u[0] & k1, sc_hi = (u[2] & k2) | (((u[0] >> 6) & k3) << 4);
  const uint32_t mn_lo = u[1] & k1, mn_hi = ((u[2] >> 4) & k2) | (((u[1] >> 6) & k3) << 4);
  *sc8 = (int64_t)((uint64_t)sc_lo | (uint64_t)sc_hi << 32);
  *mn8 = (int64_t)((uint64_t)mn_lo | (uint64_t)mn_hi << 32);
}

// the sum of a vector's 8 lanes
__attribute__((target("avx"), always_inline)) inline float hsum256(__m256 v) {
  __m128 x4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x4 = _mm_add_ps(x4, _mm_movehl_ps(x4, x4));
  x4 = _mm_add_ss(x4, _mm_movehdup_ps(x4));
  return _mm_cvtss_f32(x4);
}

// Q6_K decode with AVX-512 VNNI and BW, 64 values per instruction, R rows of weights at once (sharing the loads
// of the activations and one reduction): the six-bit values as they are (0..63, u8) meet the int8 activations in
// vpdpbusd, whose 16 int32 lanes are 4 lanes per group of 16 values; each lane is scaled by its group's float scale
// dd·sc[g]·d[block of g] (one vpermps from the 16 of the super-block), and the offset 32 comes off through the
// activation row's sums per 16 (Σ_g scale_g·32·S16_g, with c16 precomputed per row of x). The integer sums per group
// equal dot_q6_k's; only the float summation order differs.
// dq16[g], c16[g]: per group of 16 values of the activation row, its block's scale d[g/2] and 32·Σq over the group.
template <int R>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,f16c"))) void dot_q6_k_avx512(
    const uint8_t* w, long rb, const int8_t* q, const float* dq16, const float* c16, long nsb, float* o) {
  const __m512i m4 = _mm512_set1_epi8(15), m30 = _mm512_set1_epi8(0x30);
  const __m512i up = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);    // y[0..31] ← qh bits 0-1, y[32..63] ← bits 2-3
  const __m512i down = _mm512_inserti64x4(_mm512_set1_epi16(0), _mm256_set1_epi16(2), 1);  // y[64..95] ← bits 4-5, y[96..127] ← bits 6-7
  __m512 acc[R], corr[R];
  for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps(), corr[r] = _mm512_setzero_ps();
  for (long B = 0; B < nsb; B++, w += 210, q += 256, dq16 += 16, c16 += 16) {
    const __m512 dqv = _mm512_loadu_ps(dq16), cv = _mm512_loadu_ps(c16);
    const __m512i q0 = _mm512_loadu_si512((const void*)q), q1 = _mm512_loadu_si512((const void*)(q + 64));
    const __m512i q2 = _mm512_loadu_si512((const void*)(q + 128)), q3 = _mm512_loadu_si512((const void*)(q + 192));
    for (int r = 0; r < R; r++) {
      const uint8_t* wr = w + r * rb;
      // the same super-block of the row R rows on, at the rate this one is read (R rows of K ≥ 2048 are R streams,
      // which the hardware prefetcher alone did not keep up with)
      for (int l = 0; l < 210; l += 64) _mm_prefetch((const char*)(wr + R * rb + l), _MM_HINT_T0);
      const float dd = _cvtsh_ss((unsigned short)(wr[208] | wr[209] << 8));
      const __m512 sc = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(wr + 192)))),
                                      _mm512_mul_ps(dqv, _mm512_set1_ps(dd)));
      corr[r] = _mm512_fmadd_ps(sc, cv, corr[r]);
      for (int h = 0; h < 2; h++) {
        const __m512i l = _mm512_loadu_si512((const void*)(wr + 64 * h));
        const __m512i hb = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i*)(wr + 128 + 32 * h)));
        const __m512i v0 = _mm512_or_si512(_mm512_and_si512(l, m4), _mm512_and_si512(_mm512_sllv_epi16(hb, up), m30));
        const __m512i v1 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), m4), _mm512_and_si512(_mm512_srlv_epi16(hb, down), m30));
        const __m512i p0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), v0, h ? q2 : q0);
        const __m512i p1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), v1, h ? q3 : q1);
        // lanes 4k..4k+3 of p0 are group 8h + k (k = 0..3), of p1 group 8h + 4 + k
        const __m512i base = _mm512_setr_epi32(8 * h, 8 * h, 8 * h, 8 * h, 8 * h + 1, 8 * h + 1, 8 * h + 1, 8 * h + 1, 8 * h + 2, 8 * h + 2,
                                               8 * h + 2, 8 * h + 2, 8 * h + 3, 8 * h + 3, 8 * h + 3, 8 * h + 3);
        acc[r] = _mm512_fmadd_ps(_mm512_permutexvar_ps(base, sc), _mm512_cvtepi32_ps(p0), acc[r]);
        acc[r] = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_add_epi32(base, _mm512_set1_epi32(4)), sc), _mm512_cvtepi32_ps(p1), acc[r]);
      }
    }
  }
  for (int r = 0; r < R; r++) {
    const __m512 v = _mm512_sub_ps(acc[r], corr[r]);
    o[r] = _mm512_reduce_add_ps(v);
  }
}

// Q4_K the same way: 64 four-bit values per vpdpbusd (two 32-value sub-blocks of the same nibble half: chunk c's and
// c+1's), 8 lanes per sub-block scaled by d·sc[j]·d_x (one vpermps from the super-block's 8), the mins through the
// activation blocks' Σq (dmin·Σ_j mn[j]·d_x·Σq, with ds[b] = d_x[b]·Σq_b precomputed per row of x); R weight rows per
// pass. The integer sums per sub-block equal dot_q4_k's.
template <int R>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c"))) void dot_q4_k_avx512(const uint8_t* w, long rb, const int8_t* q,
                                                                                           const float* d, const float* ds, long nsb, float* o) {
  const __m512i m4 = _mm512_set1_epi8(15);
  const __m512i i0 = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2);
  const __m512i one = _mm512_set1_epi32(1), four = _mm512_set1_epi32(4);
  __m512 acc[R];
  __m256 corr[R];
  for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps(), corr[r] = _mm256_setzero_ps();
  for (long B = 0; B < nsb; B++, w += 144, q += 256, d += 8, ds += 8) {
    // activations: xl[c2] = sub-blocks 4·c2 and 4·c2 + 2 (the low nibbles of chunks 2·c2, 2·c2 + 1), xh[c2] = 4·c2 + 1, 4·c2 + 3
    __m512i xl[2], xh[2];
    for (int c2 = 0; c2 < 2; c2++) {
      xl[c2] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i*)(q + 128 * c2))), _mm256_loadu_si256((const __m256i*)(q + 128 * c2 + 64)), 1);
      xh[c2] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i*)(q + 128 * c2 + 32))), _mm256_loadu_si256((const __m256i*)(q + 128 * c2 + 96)), 1);
    }
    const __m256 dv = _mm256_loadu_ps(d), dsv = _mm256_loadu_ps(ds);
    for (int r = 0; r < R; r++) {
      const uint8_t* wr = w + r * rb;
      for (int l = 0; l < 144; l += 64) _mm_prefetch((const char*)(wr + R * rb + l), _MM_HINT_T0);  // as in dot_q6_k_avx512
      int64_t sc8, mn8;
      q4k_scales_packed(wr + 4, &sc8, &mn8);
      const float dd = _cvtsh_ss((unsigned short)(wr[0] | wr[1] << 8)), dm = _cvtsh_ss((unsigned short)(wr[2] | wr[3] << 8));
      const __m256 fs = _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(sc8))), dv), _mm256_set1_ps(dd));
      corr[r] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(mn8))), _mm256_set1_ps(dm)), dsv, corr[r]);
      const __m512 fs2 = _mm512_castps256_ps512(fs);
      for (int c2 = 0; c2 < 2; c2++) {
        const __m512i l = _mm512_loadu_si512((const void*)(wr + 16 + 64 * c2));
        const __m512i pl = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_and_si512(l, m4), xl[c2]);
        const __m512i ph = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_and_si512(_mm512_srli_epi16(l, 4), m4), xh[c2]);
        const __m512i il = _mm512_add_epi32(i0, c2 ? four : _mm512_setzero_si512());  // sub-blocks 4·c2, 4·c2 + 2
        acc[r] = _mm512_fmadd_ps(_mm512_permutexvar_ps(il, fs2), _mm512_cvtepi32_ps(pl), acc[r]);
        acc[r] = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_add_epi32(il, one), fs2), _mm512_cvtepi32_ps(ph), acc[r]);
      }
    }
  }
  for (int r = 0; r < R; r++) {
    o[r] = _mm512_reduce_add_ps(acc[r]) - hsum256(corr[r]);
  }
}

// Q6_K with AVX2 (no VNNI), the same scheme in 256-bit vectors: the six-bit values (0..63, u8) meet the int8
// activations in vpmaddubsw (pair sums ≤ 2·63·127: no saturation), vpmaddwd by 1 makes 8 int32 lanes of 4 values,
// lanes 0-3 one group of 16 and 4-7 the next, scaled from the super-block's 16 group scales (two vectors, one vpermps);
// the offset 32 through c16 as above; R weight rows a pass.
template <int R>
__attribute__((target("avx2,fma,f16c"))) void dot_q6_k_avx2(const uint8_t* w, long rb, const int8_t* q, const float* dq16,
                                                         const float* c16, long nsb, float* o) {
  const __m256i m4 = _mm256_set1_epi8(15), m30 = _mm256_set1_epi8(0x30), ones = _mm256_set1_epi16(1);
  __m256 acc[R], corr[R];
  for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps(), corr[r] = _mm256_setzero_ps();
  for (long B = 0; B < nsb; B++, w += 210, q += 256, dq16 += 16, c16 += 16) {
    const __m256 dqa = _mm256_loadu_ps(dq16), dqb = _mm256_loadu_ps(dq16 + 8), ca = _mm256_loadu_ps(c16), cb = _mm256_loadu_ps(c16 + 8);
    for (int r = 0; r < R; r++) {
      const uint8_t* wr = w + r * rb;
      for (int l = 0; l < 210; l += 64) _mm_prefetch((const char*)(wr + R * rb + l), _MM_HINT_T0);
      const __m256 dd = _mm256_set1_ps(_cvtsh_ss((unsigned short)(wr[208] | wr[209] << 8)));
      const __m128i sc16 = _mm_loadu_si128((const __m128i*)(wr + 192));
      const __m256 sa = _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc16)), dqa), dd);
      const __m256 sb = _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(sc16, 8))), dqb), dd);
      corr[r] = _mm256_fmadd_ps(sb, cb, _mm256_fmadd_ps(sa, ca, corr[r]));
      for (int h = 0; h < 2; h++) {
        const __m256 sh = h ? sb : sa;  // the scales of groups 8h..8h+7
        const __m256i l0 = _mm256_loadu_si256((const __m256i*)(wr + 64 * h)), l1 = _mm256_loadu_si256((const __m256i*)(wr + 64 * h + 32));
        const __m256i hv = _mm256_loadu_si256((const __m256i*)(wr + 128 + 32 * h));
        // y[32k .. 32k+31] of this half, k = 0..3: groups 8h + 2k, 8h + 2k + 1
        const __m256i y[4] = {
            _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(hv, 4), m30)),
            _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(hv, 2), m30)),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(hv, m30)),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), _mm256_and_si256(_mm256_srli_epi16(hv, 2), m30))};
        for (int k = 0; k < 4; k++) {
          const __m256i xq = _mm256_loadu_si256((const __m256i*)(q + 128 * h + 32 * k));
          const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(y[k], xq), ones);
          const __m256i idx = _mm256_setr_epi32(2 * k, 2 * k, 2 * k, 2 * k, 2 * k + 1, 2 * k + 1, 2 * k + 1, 2 * k + 1);
          acc[r] = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(sh, idx), _mm256_cvtepi32_ps(p), acc[r]);
        }
      }
    }
  }
  for (int r = 0; r < R; r++) {
    o[r] = hsum256(_mm256_sub_ps(acc[r], corr[r]));
  }
}

// Q4_K with AVX2 the same way: each 32-byte chunk's low and high nibbles are two sub-blocks of 32 values (u8 0..15)
// against the int8 activations in vpmaddubsw + vpmaddwd (8 int32 lanes of one sub-block), scaled by that sub-block's
// d·sc[j]·d_x (broadcast from the super-block's 8), the mins through d_x·Σq as dot_q4_k_avx512; R rows a pass.
template <int R>
__attribute__((target("avx2,fma,f16c"))) void dot_q4_k_avx2(const uint8_t* w, long rb, const int8_t* q, const float* d, const float* ds,
                                                         long nsb, float* o) {
  const __m256i m4 = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1);
  __m256 acc[R], corr[R];
  for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps(), corr[r] = _mm256_setzero_ps();
  for (long B = 0; B < nsb; B++, w += 144, q += 256, d += 8, ds += 8) {
    const __m256 dv = _mm256_loadu_ps(d), dsv = _mm256_loadu_ps(ds);
    for (int r = 0; r < R; r++) {
      const uint8_t* wr = w + r * rb;
      for (int l = 0; l < 144; l += 64) _mm_prefetch((const char*)(wr + R * rb + l), _MM_HINT_T0);
      int64_t sc8, mn8;
      q4k_scales_packed(wr + 4, &sc8, &mn8);
      const float dd = _cvtsh_ss((unsigned short)(wr[0] | wr[1] << 8)), dm = _cvtsh_ss((unsigned short)(wr[2] | wr[3] << 8));
      const __m256 fs = _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(sc8))), dv), _mm256_set1_ps(dd));
      corr[r] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(mn8))), _mm256_set1_ps(dm)), dsv, corr[r]);
      for (int c = 0; c < 4; c++) {
        const __m256i raw = _mm256_loadu_si256((const __m256i*)(wr + 16 + 32 * c));
        const __m256i pl = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_and_si256(raw, m4), _mm256_loadu_si256((const __m256i*)(q + 64 * c))), ones);
        const __m256i ph = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(raw, 4), m4), _mm256_loadu_si256((const __m256i*)(q + 64 * c + 32))), ones);
        acc[r] = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(fs, _mm256_set1_epi32(2 * c)), _mm256_cvtepi32_ps(pl), acc[r]);
        acc[r] = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(fs, _mm256_set1_epi32(2 * c + 1)), _mm256_cvtepi32_ps(ph), acc[r]);
      }
    }
  }
  for (int r = 0; r < R; r++) {
    o[r] = hsum256(_mm256_sub_ps(acc[r], corr[r]));
  }
}

// The 4-row K-quant kernels over the weight rows of matmul_quant's tasks (`per` groups of G rows each): rows four
// at a time (the last 1–3 one by one), every row of x against each quad; dot(n, m, nr, v) writes v[0..nr) for weight
// rows n.. against row m of x.
template <class Dot>
void k_quant_rows(long tasks, long per, long G, long M, long N, float* out, bool accumulate, const Dot& dot) {
  parallel_for(tasks, [&](long t) {
    long n0 = t * per * G, n1 = n0 + per * G < N ? n0 + per * G : N;
    for (long n = n0; n < n1;) {
      const int nr = n + 4 <= n1 ? 4 : 1;
      for (long m = 0; m < M; m++) {
        float v[4];
        dot(n, m, nr, v);
        float* o = out + m * N + n;
        for (int r = 0; r < nr; r++) o[r] = accumulate ? o[r] + v[r] : v[r];
      }
      n += nr;
    }
  });
}
}  // namespace
#endif

void matmul_quant(QuantKind kind, long M, long K, long N, const float* x, const uint8_t* w, float* out, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  const long nb = K / 32, rb = K / QK_SIZE[kind] * QK_BYTES[kind];
  if (M >= QUANT_GEMM_ROWS) {
    // Prefill is bound by arithmetic, not by weight bytes: each task dequantizes a chunk of up to 256 weight rows
    // to float32 and multiplies all of x by it on its own thread (sgemm_serial into its columns of out), at least
    // two tasks per thread. Tasks share nothing, so there is no barrier per chunk (one chunk at a time, dequantized
    // and multiplied across the pool, made a 32-token prefill of mini-42m no faster on 2 threads than on 1); the
    // rows' dequantization costs 1/M of the product.
    const long per_thread = (N + 2 * pool_threads() - 1) / (2 * pool_threads());
    const long ch = std::max<long>(32, std::min<long>(256, (per_thread + 31) / 32 * 32));
    const long tasks = (N + ch - 1) / ch;
    parallel_for(tasks, [&](long t) {
      thread_local std::vector<float> wf;
      const long n0 = t * ch, nc = std::min(ch, N - n0);
      if ((long)wf.size() < nc * K) wf.resize(nc * K);
      float* f = wf.data();
      for (long r = 0; r < nc; r++) dequant_row(kind, w + (n0 + r) * rb, f + r * K, K);
      sgemm_serial(M, nc, K, x, K, 1, f, 1, K, out + n0, N, accumulate);
    });
    return;
  }
  // tasks: groups of weight rows, about 4 per thread (and at least 8 rows each unless N is small)
  const long G = 8;
  long groups = (N + G - 1) / G, per = groups / (4L * pool_threads());
  if (per < 1) per = 1;
  long tasks = (groups + per - 1) / per;
  if (kind == QK_BF16) {
    const DotF32Fn dot = dot_bf16_for();
    parallel_for(tasks, [&](long t) {
      long n0 = t * per * G, n1 = n0 + per * G < N ? n0 + per * G : N;
      for (long g0 = n0; g0 < n1; g0 += G) {
        long g1 = g0 + G < n1 ? g0 + G : n1;
        for (long m = 0; m < M; m++)
          for (long n = g0; n < g1; n++) {
            float v = dot(w + n * rb, x + m * K, K);
            out[m * N + n] = accumulate ? out[m * N + n] + v : v;
          }
      }
    });
    return;
  }
  const QuantizedRows xq = quantize_rows(x, M, K);
  const int8_t* q = xq.q;
  const float* d = xq.d;
  const int32_t* s = xq.s;
#if LT_X86
  static const bool q6_512 = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  static const bool q6_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  // the K-quant kernels: AVX-512 VNNI/BW where the CPU has it, else AVX2 (4 rows a pass either way)
  const bool q6_wide = q6_512 && simd_level() >= SIMD_AVX512;
  const bool k_rows = q6_wide || (q6_avx2 && simd_level() >= SIMD_AVX2);
  if (kind == QK_Q4_K && k_rows) {
    // per row of x and block of 32: d_x·Σq (the mins' term)
    thread_local std::vector<float> dsv;
    if ((long)dsv.size() < M * nb) dsv.resize(M * nb);
    float* ds = dsv.data();
    for (long i = 0; i < M * nb; i++) ds[i] = d[i] * (float)s[i];
    k_quant_rows(tasks, per, G, M, N, out, accumulate, [&](long n, long m, int nr, float* v) {
      const uint8_t* wn = w + n * rb;
      const int8_t* qm = q + m * K;
      if (q6_wide) {
        if (nr == 4) dot_q4_k_avx512<4>(wn, rb, qm, d + m * nb, ds + m * nb, K / 256, v);
        else dot_q4_k_avx512<1>(wn, rb, qm, d + m * nb, ds + m * nb, K / 256, v);
      } else {
        if (nr == 4) dot_q4_k_avx2<4>(wn, rb, qm, d + m * nb, ds + m * nb, K / 256, v);
        else dot_q4_k_avx2<1>(wn, rb, qm, d + m * nb, ds + m * nb, K / 256, v);
      }
    });
    return;
  }
  if (kind == QK_Q6_K && k_rows) {
    // per row of x and group of 16 values: its block's scale and 32·Σq (exact in float: |Σq| ≤ 16·127)
    const long ng = K / 16;
    thread_local std::vector<float> gv;
    if ((long)gv.size() < 2 * M * ng) gv.resize(2 * M * ng);
    float *dq16 = gv.data(), *c16 = gv.data() + M * ng;
    for (long m = 0; m < M; m++)
      for (long g = 0; g < ng; g++) {
        int32_t sum = 0;
        for (int j = 0; j < 16; j++) sum += q[m * K + 16 * g + j];
        dq16[m * ng + g] = d[m * nb + g / 2];
        c16[m * ng + g] = 32.0f * (float)sum;
      }
    k_quant_rows(tasks, per, G, M, N, out, accumulate, [&](long n, long m, int nr, float* v) {
      const uint8_t* wn = w + n * rb;
      const int8_t* qm = q + m * K;
      if (q6_wide) {
        if (nr == 4) dot_q6_k_avx512<4>(wn, rb, qm, dq16 + m * ng, c16 + m * ng, K / 256, v);
        else dot_q6_k_avx512<1>(wn, rb, qm, dq16 + m * ng, c16 + m * ng, K / 256, v);
      } else {
        if (nr == 4) dot_q6_k_avx2<4>(wn, rb, qm, dq16 + m * ng, c16 + m * ng, K / 256, v);
        else dot_q6_k_avx2<1>(wn, rb, qm, dq16 + m * ng, c16 + m * ng, K / 256, v);
      }
    });
    return;
  }
#endif
  const DotFn dot = dot_for(kind);
  parallel_for(tasks, [&](long t) {
    long n0 = t * per * G, n1 = n0 + per * G < N ? n0 + per * G : N;
    for (long g0 = n0; g0 < n1; g0 += G) {
      long g1 = g0 + G < n1 ? g0 + G : n1;
      for (long m = 0; m < M; m++) {
        float* o = out + m * N;
        for (long n = g0; n < g1; n++) {
          float v = dot(w + n * rb, q + m * K, d + m * nb, s + m * nb, nb);
          o[n] = accumulate ? o[n] + v : v;
        }
      }
    }
  });
}

}  // namespace lt
