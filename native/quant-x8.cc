// Q4_0 decode products over weights repacked 8 rows at a time (llama.cpp's "REPACK" idea): out[M,N] (+)= x[M,K]·wᵀ
// for M < QUANT_GEMM_ROWS. The layout (made once at load by repackQ4_0x8 in src/kernels/ops/quant.ts, which holds the
// reference; tests: test/quant.test.ts on every SIMD path): the rows padded with zero rows to a multiple of 8, then
// per group of 8 rows and per block of 32 columns 144 bytes:
//
//   bytes 0..15     the 8 rows' f16 scales (row r at 2r)
//   bytes 16..143   4 chunks c of 32 bytes; byte 4r + i of chunk c is byte 4c + i of row r's 16 nibble bytes
//
// so one 256-bit load of chunk c gives, in int32 lane r, row r's values 4c..4c+3 (low nibbles) and 16+4c..16+4c+3
// (high nibbles); each meets the same 4 activation bytes, broadcast to all lanes. One pass over a block computes
// the integer sums of all 8 rows (vpdpbusd with AVX-512 VNNI, vpmaddubsw with AVX2: nibbles as u8 × activations as
// s8), the weights' offset 8 is subtracted through the activation block's Σq, and 8 float accumulators (one lane
// each) take the block's scaled sums. The integer sums equal the per-row kernel's; only the float summation order
// differs (the portable path keeps the per-row kernel's order exactly).
#include <algorithm>
#include <vector>

#include "pool.h"
#include "quant.h"
#include "simd.h"

#if LT_X86
#include <immintrin.h>
#endif

namespace lt {

namespace {

const long X8_BLOCK = 144;  // bytes of one group's block: 8 scales + 128 nibble bytes

// one group (8 rows) against one quantized activation row: o[r] = Σ over blocks, r = 0..7
void gemv_x8_generic(const uint8_t* w, const int8_t* q, const float* d, const int32_t* s, long nb, float* o) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (long b = 0; b < nb; b++, w += X8_BLOCK) {
    const int8_t* qb = q + 32 * b;
    for (int r = 0; r < 8; r++) {
      int32_t sum = 0;
      for (int c = 0; c < 4; c++)
        for (int i = 0; i < 4; i++) {
          uint8_t v = w[16 + 32 * c + 4 * r + i];
          sum += (v & 15) * qb[4 * c + i] + (v >> 4) * qb[16 + 4 * c + i];
        }
      acc[r] += half_to_float(w + 2 * r) * d[b] * (float)(sum - 8 * s[b]);
    }
  }
  for (int r = 0; r < 8; r++) o[r] = acc[r];
}

#if LT_X86
// the 8 rows' integer sums of one block (lane r: row r), before the offset
#define X8_BLOCK_SUMS(DOT)                                                                                    \
  __m256i lo0 = _mm256_setzero_si256(), hi0 = _mm256_setzero_si256();                                       \
  for (int c = 0; c < 4; c++) {                                                                              \
    __m256i raw = _mm256_loadu_si256((const __m256i*)(w + 16 + 32 * c));                                     \
    int32_t ql, qh;                                                                                          \
    __builtin_memcpy(&ql, qb + 4 * c, 4);                                                                    \
    __builtin_memcpy(&qh, qb + 16 + 4 * c, 4);                                                               \
    DOT(lo0, _mm256_and_si256(raw, m4), _mm256_set1_epi32(ql));                                              \
    DOT(hi0, _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4), _mm256_set1_epi32(qh));                        \
  }

// VNNI: two chains of 4 vpdpbusd per block (lows, highs)
#define X8_DOT_VNNI(acc, u, s) acc = _mm256_dpbusd_epi32(acc, u, s)
__attribute__((target("avx512f,avx512vl,avx512vnni,avx2,fma,f16c")))
void gemv_x8_vnni(const uint8_t* w, const int8_t* q, const float* d, const int32_t* s, long nb, float* o) {
  const __m256i m4 = _mm256_set1_epi8(15);
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  for (long b = 0; b < nb; b++, w += X8_BLOCK) {
    const int8_t* qb = q + 32 * b;
    X8_BLOCK_SUMS(X8_DOT_VNNI)
    __m256i sum = _mm256_sub_epi32(_mm256_add_epi32(lo0, hi0), _mm256_set1_epi32(8 * s[b]));
    __m256 sc = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)w)), _mm256_set1_ps(d[b]));
    if (b & 1) a1 = _mm256_fmadd_ps(sc, _mm256_cvtepi32_ps(sum), a1);
    else a0 = _mm256_fmadd_ps(sc, _mm256_cvtepi32_ps(sum), a0);
  }
  _mm256_storeu_ps(o, _mm256_add_ps(a0, a1));
}

// AVX2: vpmaddubsw gives int16 pairs (|.| ≤ 2·15·127 = 3810); the 4 chunks' lows and highs summed in int16
// (≤ 8·3810 = 30480, no saturation), then one vpmaddwd by 1 to int32 per lane
#define X8_DOT_AVX2(acc, u, s) acc = _mm256_add_epi16(acc, _mm256_maddubs_epi16(u, s))
__attribute__((target("avx2,fma,f16c")))
void gemv_x8_avx2(const uint8_t* w, const int8_t* q, const float* d, const int32_t* s, long nb, float* o) {
  const __m256i m4 = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1);
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  for (long b = 0; b < nb; b++, w += X8_BLOCK) {
    const int8_t* qb = q + 32 * b;
    X8_BLOCK_SUMS(X8_DOT_AVX2)
    __m256i sum = _mm256_sub_epi32(_mm256_madd_epi16(_mm256_add_epi16(lo0, hi0), ones), _mm256_set1_epi32(8 * s[b]));
    __m256 sc = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)w)), _mm256_set1_ps(d[b]));
    if (b & 1) a1 = _mm256_fmadd_ps(sc, _mm256_cvtepi32_ps(sum), a1);
    else a0 = _mm256_fmadd_ps(sc, _mm256_cvtepi32_ps(sum), a0);
  }
  _mm256_storeu_ps(o, _mm256_add_ps(a0, a1));
}
#endif

using GemvFn = void (*)(const uint8_t*, const int8_t*, const float*, const int32_t*, long, float*);

GemvFn gemv_for() {
#if LT_X86
  static const bool has_vnni = __builtin_cpu_supports("avx512vnni");
  int level = simd_level();
  if (level >= SIMD_AVX512 && has_vnni) return gemv_x8_vnni;
  if (level >= SIMD_AVX2 && __builtin_cpu_supports("f16c")) return gemv_x8_avx2;
#endif
  return gemv_x8_generic;
}

}  // namespace

void matmul_q4_0x8(long M, long K, long N, const float* x, const uint8_t* w, float* out, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  const long nb = K / 32, groups = (N + 7) / 8, gb = nb * X8_BLOCK;
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
  const GemvFn gemv = gemv_for();
  // tasks: runs of groups, about 4 per thread; a group's bytes stay in L1 across the rows of x
  long per = groups / (4L * pool_threads());
  if (per < 1) per = 1;
  const long tasks = (groups + per - 1) / per;
  parallel_for(tasks, [&](long t) {
    const long g1 = std::min(groups, (t + 1) * per);
    for (long g = t * per; g < g1; g++) {
      const long n0 = 8 * g, nr = std::min(8L, N - n0);
      for (long m = 0; m < M; m++) {
        float v[8];
        gemv(w + g * gb, q + m * K, d + m * nb, s + m * nb, nb, v);
        float* o = out + m * N + n0;
        if (accumulate) for (long r = 0; r < nr; r++) o[r] += v[r];
        else for (long r = 0; r < nr; r++) o[r] = v[r];
      }
    }
  });
}

}  // namespace lt
