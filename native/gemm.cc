#include "gemm.h"

#include <algorithm>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <vector>

#include "pool.h"
#include "simd.h"
#if LT_X86
#include <immintrin.h>
#endif

namespace lt {
namespace {

// Micro-kernel: C[MR,NR] (+)= A·B over kc. A is a packed panel (A[k*MR + i]) or, when DA, rows read in place
// (A[i*lda + k]); B is a packed panel (B[k*NR + j]) or, when DB, rows read in place (B[k*ldb + j]).
// Reading an operand in place avoids repacking a large weight that only a few rows use (the 32-row head chunks).
typedef void (*Ukr)(long kc, const float* A, long lda, const float* B, long ldb, float* C, long ldc, bool acc);

struct KernelDesc {
  int MR, NR, MC, KC, NC;
  Ukr ukr[2][2];  // [DA][DB]
};

// ---------------------------------------------------------------- micro-kernels

// Portable 6x8 with GCC vector extensions (SSE2 on x86-64, NEON elsewhere): 12 accumulators of 4 lanes.
typedef float v4f __attribute__((vector_size(16)));
constexpr int G_MR = 6, G_NR = 8;
template <bool DA, bool DB>
void ukr_generic(long kc, const float* A, long lda, const float* B, long ldb, float* C, long ldc, bool acc) {
  v4f c[G_MR][2];
  for (int i = 0; i < G_MR; i++) c[i][0] = c[i][1] = v4f{0, 0, 0, 0};
  for (long k = 0; k < kc; k++) {
    const float* b = DB ? B + k * ldb : B + k * G_NR;
    v4f b0, b1;
    std::memcpy(&b0, b, 16);
    std::memcpy(&b1, b + 4, 16);
    for (int i = 0; i < G_MR; i++) {
      float a = DA ? A[i * lda + k] : A[k * G_MR + i];
      c[i][0] += a * b0;
      c[i][1] += a * b1;
    }
  }
  for (int i = 0; i < G_MR; i++) {
    float* p = C + i * ldc;
    if (acc) {
      v4f x0, x1;
      std::memcpy(&x0, p, 16);
      std::memcpy(&x1, p + 4, 16);
      c[i][0] += x0;
      c[i][1] += x1;
    }
    std::memcpy(p, &c[i][0], 16);
    std::memcpy(p + 4, &c[i][1], 16);
  }
}

#if LT_X86
// The micro-kernels' epilogue: C rows i < MR (+)= the accumulators c[i][0..1], two vectors of VL floats a row (a
// macro: each copy is compiled under its micro-kernel's target attribute).
#define LT_UKR_STORE(MR, VL, ADD, LOAD, STORE)               \
  for (int i = 0; i < MR; i++) {                             \
    float* p = C + i * ldc;                                  \
    if (acc) {                                               \
      c[i][0] = ADD(c[i][0], LOAD(p));                       \
      c[i][1] = ADD(c[i][1], LOAD(p + VL));                  \
    }                                                        \
    STORE(p, c[i][0]);                                       \
    STORE(p + VL, c[i][1]);                                  \
  }

// AVX2/FMA 6x16: 12 accumulators, 2 B vectors, 1 broadcast.
template <bool DA, bool DB>
LT_TARGET_AVX2 void ukr_avx2(long kc, const float* A, long lda, const float* B, long ldb, float* C, long ldc, bool acc) {
  __m256 c[6][2];
  if (acc) {
#pragma GCC unroll 6
    for (int i = 0; i < 6; i++) _mm_prefetch((const char*)(C + i * ldc), _MM_HINT_T0);
  }
#pragma GCC unroll 6
  for (int i = 0; i < 6; i++) c[i][0] = c[i][1] = _mm256_setzero_ps();
#pragma GCC unroll 4
  for (long k = 0; k < kc; k++) {
    const float* b = DB ? B + k * ldb : B + k * 16;
    if (DB) _mm_prefetch((const char*)(b + 8 * ldb), _MM_HINT_T0);
    if (DA) _mm_prefetch((const char*)(A + (k % 6) * lda + k + 64), _MM_HINT_T0);
    __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 6
    for (int i = 0; i < 6; i++) {
      __m256 a = _mm256_broadcast_ss(DA ? A + i * lda + k : A + k * 6 + i);
      c[i][0] = _mm256_fmadd_ps(a, b0, c[i][0]);
      c[i][1] = _mm256_fmadd_ps(a, b1, c[i][1]);
    }
  }
#pragma GCC unroll 6
  LT_UKR_STORE(6, 8, _mm256_add_ps, _mm256_loadu_ps, _mm256_storeu_ps)
}

// AVX-512 MRx32 (MR = 8: 16 accumulators; MR = 12: 24 of the 32 zmm registers): 2 B vectors per k, A broadcast
// from memory. More rows per tile = fewer B loads and fewer C round trips per flop.
template <int MR_, bool DA, bool DB>
LT_TARGET_AVX512 void ukr_avx512(long kc, const float* A, long lda, const float* B, long ldb, float* C, long ldc, bool acc) {
  __m512 c[MR_][2];
  if (acc) {  // C may come from far away (a large weight gradient): start fetching it now
#pragma GCC unroll 16
    for (int i = 0; i < MR_; i++) {
      _mm_prefetch((const char*)(C + i * ldc), _MM_HINT_T0);
      _mm_prefetch((const char*)(C + i * ldc + 16), _MM_HINT_T0);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR_; i++) c[i][0] = c[i][1] = _mm512_setzero_ps();
#pragma GCC unroll 4
  for (long k = 0; k < kc; k++) {
    const float* b = DB ? B + k * ldb : B + k * 32;
    // operands read in place come from far away: fetch ahead (B: the row 8 ahead; A: one of the rows, 64 ahead)
    if (DB) _mm_prefetch((const char*)(b + 8 * ldb), _MM_HINT_T0), _mm_prefetch((const char*)(b + 8 * ldb + 16), _MM_HINT_T0);
    if (DA) _mm_prefetch((const char*)(A + (k % MR_) * lda + k + 64), _MM_HINT_T0);
    __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 16
    for (int i = 0; i < MR_; i++) {
      __m512 a = _mm512_set1_ps(DA ? A[i * lda + k] : A[k * MR_ + i]);
      c[i][0] = _mm512_fmadd_ps(a, b0, c[i][0]);
      c[i][1] = _mm512_fmadd_ps(a, b1, c[i][1]);
    }
  }
#pragma GCC unroll 16
  LT_UKR_STORE(MR_, 16, _mm512_add_ps, _mm512_loadu_ps, _mm512_storeu_ps)
}
#ifndef LT_AVX512_MR
#define LT_AVX512_MR 12
#endif
template <bool DA, bool DB>
LT_TARGET_AVX512 void ukr_avx512_mr(long kc, const float* A, long lda, const float* B, long ldb, float* C, long ldc, bool acc) {
  ukr_avx512<LT_AVX512_MR, DA, DB>(kc, A, lda, B, ldb, C, ldc, acc);
}
#endif

#define LT_UKRS(f) {{f<false, false>, f<false, true>}, {f<true, false>, f<true, true>}}

const KernelDesc& kernel_for_level(int level) {
  static const KernelDesc generic = {G_MR, G_NR, 72, 256, 512, LT_UKRS(ukr_generic)};
#if LT_X86
  static const KernelDesc avx2 = {6, 16, 96, 256, 512, LT_UKRS(ukr_avx2)};
  static KernelDesc avx512 = {LT_AVX512_MR, 32, LT_AVX512_MR * 12, 256, 512, LT_UKRS(ukr_avx512_mr)};
  static bool tuned = false;
  if (!tuned) {  // LLAMA_TS_GEMM_BLOCKS=MC,KC,NC (tuning experiments)
    tuned = true;
    if (const char* e = std::getenv("LLAMA_TS_GEMM_BLOCKS")) {
      int mc, kc, nc;
      if (std::sscanf(e, "%d,%d,%d", &mc, &kc, &nc) == 3 && mc >= avx512.MR && mc % avx512.MR == 0 && kc >= 16 && nc >= 32 && nc % 32 == 0) {
        avx512.MC = mc;
        avx512.KC = kc;
        avx512.NC = nc;
      }
    }
  }
  if (level >= SIMD_AVX512) return avx512;
  if (level >= SIMD_AVX2) return avx2;
#endif
  (void)level;
  return generic;
}

// ---------------------------------------------------------------- packing (from float32 or bfloat16 sources)

// The packers read float32, or bfloat16 widened to float32 as they copy (sgemm_bf16: the bf16 convert path), so
// that a bf16 product needs no float32 copy of its operands: widening is exact, and the packed panels, and with
// them the sums, are those of the SGEMM on the widened values.
inline float widen(float x) { return x; }
inline float widen(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline void copy_widen(float* d, const float* s, long n) { std::memcpy(d, s, sizeof(float) * n); }
inline void copy_widen(float* d, const uint16_t* s, long n) {
  for (long i = 0; i < n; i++) d[i] = widen(s[i]);
}

#if LT_X86
LT_TARGET_AVX2 inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
LT_TARGET_AVX2 inline __m256 load8(const uint16_t* p) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)p)), 16));
}

// 8x8 transpose in registers: r[i] = row i (8 consecutive k) -> r[j] = column j (8 rows at one k).
LT_TARGET_AVX2 inline void transpose8x8(__m256* r) {
  __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)), s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)), s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
  __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0)), s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
  __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0)), s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20), r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20), r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31), r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31), r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// 8 rows of length kc (row stride ld) -> dst[k*dstride + r] for r < 8 (8x8 register transposes, scalar tail).
template <class T>
LT_TARGET_AVX2 void pack_t8(const T* src, long ld, long kc, float* dst, long dstride) {
  long k = 0;
  for (; k + 8 <= kc; k += 8) {
    __m256 r[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) r[i] = load8(src + i * ld + k);
    transpose8x8(r);
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++) _mm256_storeu_ps(dst + (k + j) * dstride, r[j]);
  }
  for (; k < kc; k++)
    for (int i = 0; i < 8; i++) dst[k * dstride + i] = widen(src[i * ld + k]);
}
// 4 rows of length kc (row stride ld) -> dst[k*dstride + r] for r < 4.
template <class T>
LT_TARGET_AVX2 void pack_t4(const T* src, long ld, long kc, float* dst, long dstride) {
  long k = 0;
  for (; k + 8 <= kc; k += 8) {
    __m256 r0 = load8(src + k), r1 = load8(src + ld + k);
    __m256 r2 = load8(src + 2 * ld + k), r3 = load8(src + 3 * ld + k);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    __m256 c0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)), c1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 c2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)), c3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    // c0 = column k (lanes 0-3) and column k+4 (lanes 4-7), c1 = k+1 / k+5, ...
    _mm_storeu_ps(dst + (k + 0) * dstride, _mm256_castps256_ps128(c0));
    _mm_storeu_ps(dst + (k + 1) * dstride, _mm256_castps256_ps128(c1));
    _mm_storeu_ps(dst + (k + 2) * dstride, _mm256_castps256_ps128(c2));
    _mm_storeu_ps(dst + (k + 3) * dstride, _mm256_castps256_ps128(c3));
    _mm_storeu_ps(dst + (k + 4) * dstride, _mm256_extractf128_ps(c0, 1));
    _mm_storeu_ps(dst + (k + 5) * dstride, _mm256_extractf128_ps(c1, 1));
    _mm_storeu_ps(dst + (k + 6) * dstride, _mm256_extractf128_ps(c2, 1));
    _mm_storeu_ps(dst + (k + 7) * dstride, _mm256_extractf128_ps(c3, 1));
  }
  for (; k < kc; k++)
    for (int i = 0; i < 4; i++) dst[k * dstride + i] = widen(src[i * ld + k]);
}
#endif

// Every full panel of MR_ rows from dyᵀ (columns contiguous) in one pass over k: each k reads np·MR_ consecutive
// floats of one source row and appends MR_ of them to each panel. (Panel by panel, the strided source rows would be
// fetched once per panel: with a power-of-two stride they collide in a few L1 sets.)
template <int MR_, class T>
void pack_a_cols(const T* src, long csa, long kc, long np, float* dst) {
  for (long k = 0; k < kc; k++) {
    const T* s = src + k * csa;
    float* d = dst + k * MR_;
    for (long p = 0; p < np; p++) copy_widen(d + p * MR_ * kc, s + p * MR_, MR_);
  }
}

// Ap: ceil(mc/MR) panels, each kc x MR (row r of the panel at [k*MR + r]), zero-padded.
template <class T>
void pack_a(const T* A, long rsa, long csa, long i0, long k0, long mc, long kc, int MR, float* Ap) {
  long p0 = 0;
  if ((MR == 8 || MR == 12) && rsa == 1 && mc >= MR) {
    long np = mc / MR;
    const T* src = A + i0 + k0 * csa;
    if (MR == 8) pack_a_cols<8>(src, csa, kc, np, Ap);
    else pack_a_cols<12>(src, csa, kc, np, Ap);
    p0 = np * MR;
  }
  for (long p = p0; p < mc; p += MR) {
    long m = std::min<long>(MR, mc - p);
    float* dst = Ap + p * kc;
    const T* src = A + (i0 + p) * rsa + k0 * csa;
#if LT_X86
    if (csa == 1 && (MR == 8 || MR == 12) && m == MR) {  // only the AVX-512 kernel has MR = 8 or 12
      pack_t8(src, rsa, kc, dst, MR);
      if (MR == 12) pack_t4(src + 8 * rsa, rsa, kc, dst + 8, MR);
      continue;
    }
#endif
    if (csa == 1) {
      for (long r = 0; r < m; r++) {
        const T* s = src + r * rsa;
        for (long k = 0; k < kc; k++) dst[k * MR + r] = widen(s[k]);
      }
    } else if (rsa == 1 && m == MR) {
      for (long k = 0; k < kc; k++) {
        const T* s = src + k * csa;
        for (int r = 0; r < MR; r++) dst[k * MR + r] = widen(s[r]);
      }
    } else {
      for (long k = 0; k < kc; k++)
        for (long r = 0; r < m; r++) dst[k * MR + r] = widen(src[r * rsa + k * csa]);
    }
    if (m < MR)
      for (long k = 0; k < kc; k++)
        for (long r = m; r < MR; r++) dst[k * MR + r] = 0.f;
  }
}

// Bp: ceil(nc/NR) panels, each kc x NR (column c of the panel at [k*NR + c]), zero-padded.
template <class T>
void pack_b(const T* B, long rsb, long csb, long k0, long j0, long kc, long nc, int NR, float* Bp) {
  for (long q = 0; q < nc; q += NR) {
    long n = std::min<long>(NR, nc - q);
    float* dst = Bp + q * kc;
    const T* src = B + k0 * rsb + (j0 + q) * csb;
    if (csb == 1 && n == NR && NR == 32) {
      // all full panels in one pass over k: each source row read once, contiguously (see pack_a_cols)
      long nq = (nc - q) / 32;
      for (long k = 0; k < kc; k++) {
        const T* s = src + k * rsb;
        float* d = dst + k * 32;
        for (long t = 0; t < nq; t++) copy_widen(d + t * 32 * kc, s + t * 32, 32);
      }
      q += (nq - 1) * 32;
    } else if (csb == 1 && n == NR) {
      for (long k = 0; k < kc; k++) copy_widen(dst + k * NR, src + k * rsb, NR);
#if LT_X86
    } else if (rsb == 1 && n == NR && NR % 8 == 0 && simd_level() >= SIMD_AVX2) {
      for (long c = 0; c < NR; c += 8) pack_t8(src + c * csb, csb, kc, dst + c, NR);
#endif
    } else if (rsb == 1) {
      // B is W^T with W row-major: each column of the panel is a contiguous row of W (a transpose)
      for (long c = 0; c < n; c++) {
        const T* s = src + c * csb;
        for (long k = 0; k < kc; k++) dst[k * NR + c] = widen(s[k]);
      }
      for (long c = n; c < NR; c++)
        for (long k = 0; k < kc; k++) dst[k * NR + c] = 0.f;
    } else {
      for (long k = 0; k < kc; k++) {
        long c = 0;
        for (; c < n; c++) dst[k * NR + c] = widen(src[k * rsb + c * csb]);
        for (; c < NR; c++) dst[k * NR + c] = 0.f;
      }
    }
  }
}

// Bp as pack_b would from B [K, N] held as bf16_pack_b's k-pair panels P (32 columns a panel, each k-pair of a
// column one uint32, the lower k in the low half; see bgemm.cc): the bf16 convert path's packed weight.
void pack_b_pairs(const uint32_t* P, long K, long k0, long j0, long kc, long nc, int NR, float* Bp) {
  constexpr long PW = 32;  // columns of a pair panel
  const long kpt = (K + 1) / 2;
  for (long q = 0; q < nc; q += NR) {
    long n = std::min<long>(NR, nc - q);
    float* dst = Bp + q * kc;
    const long j = j0 + q;
    for (long k = 0; k < kc; k++) {
      const long kk = k0 + k;
      float* d = dst + k * NR;
      // the value of an odd k is the pair's high half as it stands, an even k's the low half shifted up
      const uint32_t shift = (kk & 1) ? 0 : 16, mask = (kk & 1) ? 0xffff0000u : 0xffffffffu;
      if ((j % PW) + n <= PW) {  // within one pair panel: contiguous
        const uint32_t* s = P + (j / PW) * kpt * PW + (kk >> 1) * PW + j % PW;
        for (long c = 0; c < n; c++) {
          uint32_t u = (s[c] << shift) & mask;
          std::memcpy(d + c, &u, 4);
        }
      } else {
        for (long c = 0; c < n; c++) {
          const long jc = j + c;
          uint32_t u = (P[(jc / PW) * kpt * PW + (kk >> 1) * PW + jc % PW] << shift) & mask;
          std::memcpy(d + c, &u, 4);
        }
      }
      for (long c = n; c < NR; c++) d[c] = 0.f;
    }
  }
}

// Per-thread packing buffers, allocated once per thread and grown when needed.
struct Scratch {
  float* a = nullptr;
  float* b = nullptr;
  size_t a_cap = 0, b_cap = 0;
  ~Scratch() {
    std::free(a);
    std::free(b);
  }
};
thread_local Scratch tl_scratch;

float* grow(float*& p, size_t& cap, size_t n) {
  if (cap < n) {
    std::free(p);
    size_t bytes = ((n * sizeof(float) + 63) / 64) * 64;
    p = static_cast<float*>(std::aligned_alloc(64, bytes));
    cap = n;
  }
  return p;
}

struct GemmJob {
  long M, N, K;
  const float* A;
  long rsa, csa;
  const float* B;
  long rsb, csb;
  float* C;
  long rsc, csc;
  bool accumulate;
  bool da, db;  // read A / B in place instead of packing
  const KernelDesc* kd;
  long mc, nc, tiles_n, kc;
  // bfloat16 sources (sgemm_bf16), packed with widening; A and B are then null, and nothing is read in place
  const uint16_t* A16 = nullptr;
  const uint16_t* B16 = nullptr;
  const uint32_t* Bpairs = nullptr;  // B as k-pair panels (bf16_pack_b)
};

inline void pack_a_job(const GemmJob& g, long i0, long k0, long mc, long kc, int MR, float* Ap) {
  if (g.A16) return pack_a(g.A16, g.rsa, g.csa, i0, k0, mc, kc, MR, Ap);
  pack_a(g.A, g.rsa, g.csa, i0, k0, mc, kc, MR, Ap);
}
inline void pack_b_job(const GemmJob& g, long k0, long j0, long kc, long nc, int NR, float* Bp) {
  if (g.Bpairs) return pack_b_pairs(g.Bpairs, g.K, k0, j0, kc, nc, NR, Bp);
  if (g.B16) return pack_b(g.B16, g.rsb, g.csb, k0, j0, kc, nc, NR, Bp);
  pack_b(g.B, g.rsb, g.csb, k0, j0, kc, nc, NR, Bp);
}

// A task owns an m-range x n-range of C. Per K block it packs its B block once, then walks the m-range in
// sub-blocks of MC rows (A packed per sub-block): B is packed (number of m-ranges) times in all, A (number of n-ranges).
void gemm_task(void* ctx, long t) {
  const GemmJob& g = *static_cast<const GemmJob*>(ctx);
  const KernelDesc& kd = *g.kd;
  const int MR = kd.MR, NR = kd.NR;
  const long KC = g.kc;
  long i0 = (t / g.tiles_n) * g.mc, j0 = (t % g.tiles_n) * g.nc;
  long mr = std::min(g.mc, g.M - i0), nc = std::min(g.nc, g.N - j0);
  long msub = std::min<long>(kd.MC, (mr + MR - 1) / MR * MR);
  long ncp = (nc + NR - 1) / NR * NR;
  Scratch& s = tl_scratch;
  float* Ap = grow(s.a, s.a_cap, (size_t)(g.da ? MR : msub) * KC);
  float* Bp = grow(s.b, s.b_cap, (size_t)(g.db ? NR : ncp) * KC);
  alignas(64) float tmp[16 * 32];
  long nfull = nc / NR * NR;  // in-place panels must be full
  for (long k0 = 0; k0 < g.K; k0 += KC) {
    long kc = std::min(KC, g.K - k0);
    bool acc = g.accumulate || k0 > 0;
    if (!g.db) pack_b_job(g, k0, j0, kc, nc, NR, Bp);
    else if (nfull < nc) pack_b(g.B, g.rsb, g.csb, k0, j0 + nfull, kc, nc - nfull, NR, Bp);
    for (long is = 0; is < mr; is += msub) {
      long mc = std::min(msub, mr - is);
      long ib = i0 + is;
      long mfull = mc / MR * MR;
      if (!g.da) pack_a_job(g, ib, k0, mc, kc, MR, Ap);
      else if (mfull < mc) pack_a(g.A, g.rsa, g.csa, ib + mfull, k0, mc - mfull, kc, MR, Ap);
      for (long jr = 0; jr < nc; jr += NR) {
        long n = std::min<long>(NR, nc - jr);
        bool bd = g.db && n == NR;
        const float* bp = bd ? g.B + k0 * g.rsb + (j0 + jr) : (g.db ? Bp : Bp + jr * kc);
        for (long ir = 0; ir < mc; ir += MR) {
          long m = std::min<long>(MR, mc - ir);
          bool ad = g.da && m == MR;
          const float* ap = ad ? g.A + (ib + ir) * g.rsa + k0 : (g.da ? Ap : Ap + ir * kc);
          Ukr f = kd.ukr[ad][bd];
          float* c = g.C + (ib + ir) * g.rsc + (j0 + jr) * g.csc;
          if (m == MR && n == NR && g.csc == 1) {
            f(kc, ap, g.rsa, bp, g.rsb, c, g.rsc, acc);
          } else {
            f(kc, ap, g.rsa, bp, g.rsb, tmp, NR, false);
            for (long i = 0; i < m; i++)
              for (long j = 0; j < n; j++) {
                float& x = c[i * g.rsc + j * g.csc];
                x = acc ? x + tmp[i * NR + j] : tmp[i * NR + j];
              }
          }
        }
      }
    }
  }
}

// Operands used by at most this many rows/columns are read in place rather than packed.
constexpr long DIRECT_MAX = 64;

// src16: bfloat16 sources (sgemm_bf16) in place of A and B, always packed.
struct Src16 {
  const uint16_t* A;
  const uint16_t* B;
  const uint32_t* Bpairs;
};

void sgemm_impl(long M, long N, long K, const float* A, long rsa, long csa, const float* B, long rsb, long csb, float* C,
                long rsc, long csc, bool accumulate, const Src16* src16 = nullptr) {
  const KernelDesc& kd = kernel_for_level(simd_level());
  GemmJob g{M, N, K, A, rsa, csa, B, rsb, csb, C, rsc, csc, accumulate, false, false, &kd, kd.MC, kd.NC, 0, kd.KC};
  if (src16) {
    g.A16 = src16->A;
    g.B16 = src16->B;
    g.Bpairs = src16->Bpairs;
  }
  g.da = !src16 && csa == 1 && N <= DIRECT_MAX;
  g.db = !src16 && csb == 1 && M <= DIRECT_MAX;
  // K blocks of equal size, up to 1.25·KC (K = 288 is one block, not 256 + 32). B rows read in place have a
  // large stride, so their block stays short enough not to thrash L1.
  long kcmax = g.db ? 128 : kd.KC;
  long nk = (K + kcmax * 5 / 4 - 1) / (kcmax * 5 / 4);
  g.kc = (K + nk - 1) / nk;
  // Choose the task grid: enough tasks for every thread, as little packing as possible. Packing costs
  // (tasks along N)·M·K + (tasks along M)·N·K floats (less what is read in place); one packed float costs about
  // as much time as 60 flops of the micro-kernel (measured before the packing was vectorised; 30 and 15 chose grids
  // that were no faster on these shapes).
  const long nth = pool_threads();
  const long nt0 = (N + kd.NC - 1) / kd.NC;
  const long mtmax = (M + kd.MR - 1) / kd.MR, ntmax = (N + kd.NR - 1) / kd.NR;
  double best = 1e300;
  for (long mt = 1; mt <= std::min(mtmax, 8 * nth); mt++) {
    long mc = ((M + mt - 1) / mt + kd.MR - 1) / kd.MR * kd.MR;
    long mta = (M + mc - 1) / mc;
    for (long nt = nt0; nt <= std::min(ntmax, nt0 * 8); nt++) {
      long nc = ((N + nt - 1) / nt + kd.NR - 1) / kd.NR * kd.NR;
      long nta = (N + nc - 1) / nc;
      long tasks = mta * nta;
      double waves = (double)((tasks + nth - 1) / nth) * nth / tasks;  // load imbalance
      double compute = 2.0 * (double)(mta * mc) * (double)(nta * nc) * K * waves / nth;
      double pack = 60.0 * ((g.da ? 0.0 : (double)nta * M * K) + (g.db ? 0.0 : (double)mta * N * K)) / std::min(nth, tasks);
      double cost = compute + pack;
      if (cost < best * 0.999) {
        best = cost;
        g.mc = mc;
        g.nc = nc;
      }
    }
  }
  // Few rows of A against a long K and a small C (dx = dlogits·W of a head chunk): split K into a fixed number of
  // ranges, one task each into a private copy of C, then add the copies in a fixed order. Each task streams its rows
  // of B (the weight) once, whole; the result does not depend on the thread count.
  if (g.db && !g.da && K >= 4096 && M * N <= (1L << 16)) {
    const long nsplit = 8;
    long kr = ((K + nsplit - 1) / nsplit + g.kc - 1) / g.kc * g.kc;
    long ns = (K + kr - 1) / kr;
    std::vector<float> part((size_t)ns * M * N);
    parallel_for(ns, [&](long si) {
      long ks = si * kr, kn = std::min(kr, K - ks);
      GemmJob sub = g;
      sub.A = A + ks * csa;
      sub.B = B + ks * rsb;
      sub.K = kn;
      sub.C = part.data() + (size_t)si * M * N;
      sub.rsc = N;
      sub.csc = 1;
      sub.accumulate = false;
      sub.mc = (M + kd.MR - 1) / kd.MR * kd.MR;
      sub.nc = (N + kd.NR - 1) / kd.NR * kd.NR;
      sub.tiles_n = 1;
      gemm_task(&sub, 0);
    });
    parallel_for(M, [&](long i) {
      for (long j = 0; j < N; j++) {
        float x = accumulate ? C[i * rsc + j * csc] : 0.f;
        for (long si = 0; si < ns; si++) x += part[((size_t)si * M + i) * N + j];
        C[i * rsc + j * csc] = x;
      }
    });
    return;
  }
  g.tiles_n = (N + g.nc - 1) / g.nc;
  long ntasks = ((M + g.mc - 1) / g.mc) * g.tiles_n;
  parallel_for(ntasks, gemm_task, &g);
}


// ---------------------------------------------------------------- GEMV: a few rows of x against W read in place

// Decode (batch 1) multiplies one row x by every row of a weight W [N,K]: C[i,j] (+)= Σ_k x[i,k]·W[j,k] for a few
// rows i < M. The blocked SGEMM would pack x and waste most of a register tile on one column; here each W row is
// read once, in place, as contiguous vectors: 8 rows of W at a time, dot products with 1 or 2 rows of x (8 or 16
// accumulators), reduced horizontally at the end; further pairs of x rows reuse the 8-row block from L1/L2. Rows of
// W are split across the pool; every C element is one dot product summed in a fixed order, so results do not
// depend on the thread count.
//
// Where it wins over the packed SGEMM (measured single-threaded, CPU time, AVX-512 EPYC, 2026-12-02): up to 16
// rows on every shape tried (768×288 at 8 rows: 22 µs against 66; the batched decode of `serve`), and up to 64
// rows when W is too large for the caches (4096×4096 at 32 rows: 10.5 ms against 23 ms), while a small W at 32 or
// 64 rows is faster packed (768×288 at 32 rows: 70 µs packed, 83 here).
constexpr long GEMV_MAX_M = 16;
constexpr long GEMV_MAX_M_LARGE_W = 64;
constexpr long GEMV_LARGE_W_FLOATS = 2L << 20;  // 8 MiB of W
// The SIMD GEMV blocks read their 8 W rows one after the other (each row's accumulators as before: the same sums in
// the same order, so the same bits), not the 8 rows side by side a vector at a time. Rows of one matrix are
// contiguous, so a block is one sequential stream, which the hardware prefetchers follow; side by side it was 8
// interleaved streams of a few lines each (K = 288: 18 lines), which they followed worse. On a Zen4 EPYC (family 25,
// AVX-512; 2026-12-02, one thread) a C harness read a decode's matrices in decode order at 12-14 GB/s side by side
// and 24-33 GB/s row by row (bare read ~35 GB/s). The software prefetches the side-by-side order had (one x row over
// short rows 8 KB ahead; several x rows 2 blocks ahead; both measured on a Zen5) are gone: mini-15m's batch-1 decode
// went 1.71x faster without them and 1.37x with them kept, and 2 x rows over mini-42m's matrices read 18.5 GB/s
// without against 15.4 with.
struct GemvJob {
  long M, N, K;
  const float* A;  // x rows, stride lda
  long lda;
  const float* W;  // W rows, stride ldw
  long ldw;
  float* C;  // C rows, stride ldc
  long ldc;
  bool accumulate;
  long rows_per_task;
};

inline void gemv_store8(const float* r, float* c, long n, bool acc) {
  for (long j = 0; j < n; j++) c[j] = acc ? c[j] + r[j] : r[j];
}

// Portable: one W row at a time, 4 x 4-lane accumulators per x row.
void gemv_rows_generic(const GemvJob& g, long j0, long j1) {
  const long K = g.K;
  for (long j = j0; j < j1; j++) {
    const float* w = g.W + j * g.ldw;
    for (long i = 0; i < g.M; i++) {
      const float* x = g.A + i * g.lda;
      v4f s0 = {0, 0, 0, 0}, s1 = s0, s2 = s0, s3 = s0;
      long k = 0;
      for (; k + 16 <= K; k += 16) {
        v4f a0, a1, a2, a3, b0, b1, b2, b3;
        std::memcpy(&a0, x + k, 16), std::memcpy(&a1, x + k + 4, 16), std::memcpy(&a2, x + k + 8, 16), std::memcpy(&a3, x + k + 12, 16);
        std::memcpy(&b0, w + k, 16), std::memcpy(&b1, w + k + 4, 16), std::memcpy(&b2, w + k + 8, 16), std::memcpy(&b3, w + k + 12, 16);
        s0 += a0 * b0, s1 += a1 * b1, s2 += a2 * b2, s3 += a3 * b3;
      }
      v4f s = (s0 + s1) + (s2 + s3);
      float r = (s[0] + s[1]) + (s[2] + s[3]);
      for (; k < K; k++) r += x[k] * w[k];
      float& c = g.C[i * g.ldc + j];
      c = g.accumulate ? c + r : r;
    }
  }
}

#if LT_X86
// Sums of 8 vectors → one vector of the 8 sums.
LT_TARGET_AVX2 inline __m256 hsum8_avx2(const __m256* v) {
  __m256 s01 = _mm256_hadd_ps(v[0], v[1]), s23 = _mm256_hadd_ps(v[2], v[3]);
  __m256 s45 = _mm256_hadd_ps(v[4], v[5]), s67 = _mm256_hadd_ps(v[6], v[7]);
  __m256 s0123 = _mm256_hadd_ps(s01, s23), s4567 = _mm256_hadd_ps(s45, s67);
  return _mm256_add_ps(_mm256_permute2f128_ps(s0123, s4567, 0x20), _mm256_permute2f128_ps(s0123, s4567, 0x31));
}

// c[m][r] = Σ_k x[m][k]·w[r][k] for MM rows of x and the 8 W rows: VL lanes a step, then one masked step over the
// K % VL remaining lanes (lanes past K read nothing). The accumulation of both SIMD GEMV blocks, a macro for the same
// reason as LT_GEMV_ROWS: V the vector type, ZERO/LOAD/FMA its ISA's operations, MASK(k, K) the tail's lane mask and
// MLOAD(p) the load under that `mask`. One row at a time (see the note above GemvJob): its MM accumulators
// take its VL-lane steps in order, the x rows' loads come from L1.
#define LT_GEMV_ROW_STEP(LOAD, FMA)                                       \
  {                                                                       \
    auto wv = LOAD(wr + k);                                               \
    for (int m = 0; m < MM; m++) a[m] = FMA(LOAD(x + m * lda + k), wv, a[m]);  \
  }
#define LT_GEMV_ACCUMULATE(V, VL, ZERO, LOAD, FMA, MASK, MLOAD)                                        \
  V c[MM][8];                                                                                          \
  _Pragma("GCC unroll 1") for (int r = 0; r < 8; r++) {                                               \
    const float* wr = w[r];                                                                            \
    V a[MM];                                                                                           \
    for (int m = 0; m < MM; m++) a[m] = ZERO();                                                        \
    long k = 0;                                                                                        \
    for (; k + VL <= K; k += VL) LT_GEMV_ROW_STEP(LOAD, FMA)                                           \
    if (k < K) {                                                                                       \
      auto mask = MASK(k, K);                                                                         \
      LT_GEMV_ROW_STEP(MLOAD, FMA)                                                                     \
    }                                                                                                  \
    for (int m = 0; m < MM; m++) c[m][r] = a[m];                                                       \
  }

LT_TARGET_AVX2 inline __m256i tail_mask_avx2(long k, long K) {
  alignas(32) int mk[8];
  for (int t = 0; t < 8; t++) mk[t] = k + t < K ? -1 : 0;
  return _mm256_load_si256((const __m256i*)mk);
}
#define LT_MASKLOAD_AVX2(p) _mm256_maskload_ps(p, mask)

template <int MM>
LT_TARGET_AVX2 inline void gemv_block_avx2(long K, const float* const* w, const float* x, long lda, __m256* out) {
  LT_GEMV_ACCUMULATE(__m256, 8, _mm256_setzero_ps, _mm256_loadu_ps, _mm256_fmadd_ps, tail_mask_avx2, LT_MASKLOAD_AVX2)
  for (int m = 0; m < MM; m++) out[m] = hsum8_avx2(c[m]);
}

// The row loop of the SIMD GEMV paths, defined once for each ISA's block kernel (a macro because each copy needs its
// ISA's target attribute to inline BLOCK): 8 W rows at a time (the last block clamped to row N-1, its extra sums
// dropped), x rows in pairs, each block's 8 sums stored into C (only the first n at the end of a row).
#define LT_GEMV_ROWS(NAME, TARGET, BLOCK)                                                       \
  TARGET void NAME(const GemvJob& g, long j0, long j1) {                                        \
    for (long j = j0; j < j1; j += 8) {                                                         \
      const float* w[8];                                                                        \
      for (int r = 0; r < 8; r++) w[r] = g.W + std::min(j + r, g.N - 1) * g.ldw;                \
      long n = std::min<long>(8, g.N - j);                                                      \
      for (long i = 0; i < g.M; i += 2) {                                                       \
        __m256 s[2];                                                                            \
        int mm = g.M - i >= 2 ? 2 : 1;                                                          \
        if (mm == 2) BLOCK<2>(g.K, w, g.A + i * g.lda, g.lda, s);                               \
        else BLOCK<1>(g.K, w, g.A + i * g.lda, g.lda, s);                                       \
        for (int m = 0; m < mm; m++) {                                                          \
          float* c = g.C + (i + m) * g.ldc + j;                                                 \
          if (n == 8) {                                                                         \
            _mm256_storeu_ps(c, g.accumulate ? _mm256_add_ps(s[m], _mm256_loadu_ps(c)) : s[m]); \
          } else {                                                                              \
            alignas(32) float r[8];                                                             \
            _mm256_store_ps(r, s[m]);                                                           \
            gemv_store8(r, c, n, g.accumulate);                                                 \
          }                                                                                     \
        }                                                                                       \
      }                                                                                         \
    }                                                                                           \
  }

LT_GEMV_ROWS(gemv_rows_avx2, LT_TARGET_AVX2, gemv_block_avx2)

#define LT_TAIL_MASK_AVX512(k, K) (__mmask16)((1u << ((K) - (k))) - 1)
#define LT_MASKLOAD_AVX512(p) _mm512_maskz_loadu_ps(mask, p)

template <int MM>
LT_TARGET_AVX512 inline void gemv_block_avx512(long K, const float* const* w, const float* x, long lda, __m256* out) {
  LT_GEMV_ACCUMULATE(__m512, 16, _mm512_setzero_ps, _mm512_loadu_ps, _mm512_fmadd_ps, LT_TAIL_MASK_AVX512, LT_MASKLOAD_AVX512)
  for (int m = 0; m < MM; m++) {
    __m256 h[8];
#pragma GCC unroll 8
    for (int r = 0; r < 8; r++) h[r] = _mm256_add_ps(_mm512_extractf32x8_ps(c[m][r], 0), _mm512_extractf32x8_ps(c[m][r], 1));
    out[m] = hsum8_avx2(h);
  }
}

LT_GEMV_ROWS(gemv_rows_avx512, LT_TARGET_AVX512, gemv_block_avx512)

// Three or more x rows (batched decode: `serve`'s concurrent streams, a batch of prompts; short prefill chunks). The
// block above reads each W vector once per pair of x rows and folds the loads into its FMAs, so at 8 rows it issued
// more loads than FMAs and ran at a third of the FMA rate, waiting on W in its first pass. Here 4 W rows meet up to 4
// x rows a pass (16 accumulators): every W and x vector is loaded once into a register (the empty asm keeps the
// compiler from folding it back into each FMA) and used 4 times, the first pass prefetches the W rows that follow
// (gemv_x4_prefetch_rows), and further passes over the same 4 rows (x rows 4 and on) read them from L1. Single
// thread, CPU time (AMD EPYC, AVX-512), 8 x rows: mini-15m's matrices (288×288, 768×288, 288×768, 32000×288) 2.9 →
// 1.2–1.7 ms; mini-42m's 6.2 → 3.1–3.5 ms; 4096×4096 + 11008×4096 21.9 → 16.0 ms; a 768×288 W in L2 70 → 140 GFLOP/s.
// AVX2: gemv_x4rows_avx2 below; the portable path keeps the 1-2 row loop.
// Each C element is the same 16-lane accumulator, the same tail and the same reduction (hsum8_avx2 of the halves'
// sum) as gemv_block_avx512's, so a row's products are bit for bit those of the 1- and 2-row path: a batch decodes
// exactly what each of its sequences decodes alone (serve against generate; test/native-kernels.test.ts).
template <int MM>
LT_TARGET_AVX512 inline __attribute__((always_inline)) void gemv_x4_avx512(long K, const float* const* w, const float* x, long lda, float* out, const float* pf) {
  constexpr int R = 4;
  __m512 c[MM][R];
#pragma GCC unroll 4
  for (int m = 0; m < MM; m++)
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) c[m][r] = _mm512_setzero_ps();
  long k = 0;
  for (; k + 16 <= K; k += 16) {
    if (pf) {
#pragma GCC unroll 4
      for (int r = 0; r < R; r++) _mm_prefetch((const char*)pf + k * 16 + r * 64, _MM_HINT_T1);
    }
    __m512 wv[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
      wv[r] = _mm512_loadu_ps(w[r] + k);
      __asm__("" : "+v"(wv[r]));
    }
#pragma GCC unroll 4
    for (int m = 0; m < MM; m++) {
      __m512 xv = _mm512_loadu_ps(x + m * lda + k);
      __asm__("" : "+v"(xv));
#pragma GCC unroll 4
      for (int r = 0; r < R; r++) c[m][r] = _mm512_fmadd_ps(xv, wv[r], c[m][r]);
    }
  }
  if (k < K) {
    __mmask16 mask = LT_TAIL_MASK_AVX512(k, K);
    __m512 wv[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) wv[r] = _mm512_maskz_loadu_ps(mask, w[r] + k);
#pragma GCC unroll 4
    for (int m = 0; m < MM; m++) {
      __m512 xv = _mm512_maskz_loadu_ps(mask, x + m * lda + k);
#pragma GCC unroll 4
      for (int r = 0; r < R; r++) c[m][r] = _mm512_fmadd_ps(xv, wv[r], c[m][r]);
    }
  }
  constexpr int NACC = MM * R;
  __m256 h[(NACC + 7) / 8 * 8];
#pragma GCC unroll 16
  for (int a = 0; a < (NACC + 7) / 8 * 8; a++)
    h[a] = a < NACC ? _mm256_add_ps(_mm512_extractf32x8_ps(c[a / R][a % R], 0), _mm512_extractf32x8_ps(c[a / R][a % R], 1)) : _mm256_setzero_ps();
#pragma GCC unroll 2
  for (int g = 0; g < NACC; g += 8) {
    __m256 s8 = hsum8_avx2(h + g);
    if (g + 8 <= NACC) {
      _mm256_storeu_ps(out + g, s8);
    } else {
      alignas(32) float t[8];
      _mm256_store_ps(t, s8);
      for (int u = 0; u < NACC - g; u++) out[g + u] = t[u];
    }
  }
}

// Rows ahead the first pass prefetches: the next 4-row block at least, ~8 KB of W ahead where rows are short (8 rows
// at K = 288, 4 at K = 512; measured best of 4, 8, 12, 16 rows at those K and at K = 4096). The prefetches walk that
// block's 4 rows in memory order (4 lines a 16-float step: the block ahead is one contiguous range when ldw = K), not
// the 4 rows side by side at the pass's own column: one forward stream, which the hardware prefetchers follow (see
// the note above GemvJob). Zen4 EPYC, one thread, 4 x rows over mini-15m's matrices 6.2-7.1 → 2.7-3.1 ms, mini-42m's
// 14.0-16.1 → 9.6-10.8 ms; 8 and 16 rows within the noise (mv harness, 2026-12-02). They fetch into L2 (T1), not L1:
// with T0 the first pass over 8 x rows ran from memory at less than half its in-cache rate (the 32000×288 head: 4.1-4.9
// ms, 1.5 ms in cache, 1.4 ms to stream it at one row); with T1 1.96-2.18 ms. Over mini-15m's matrices 4 / 8 / 16 x
// rows 4.2-4.8 → 2.7-3.0, 7.9-8.0 → 3.6-3.8, 9.2-9.6 → 6.2-6.3 ms; mini-42m's 13.3-13.5 → 9.2-9.6, 19.1-21.5 →
// 12.1-12.5, 24.4-25.2 → 21.5 ms; 3 rows within the noise; the AVX2 kernel 8 x rows 7.3 → 5.4-6.0 ms.
inline long gemv_x4_prefetch_rows(long K) { return std::max<long>(4, (8192 / (4 * std::max<long>(K, 1)) + 3) / 4 * 4); }

// The row loop of both batched kernels (a macro for the same reason as LT_GEMV_ROWS: each copy needs its ISA's target
// attribute to inline its pass): blocks of 4 W rows (the last clamped to row N-1, its extra sums dropped), x rows in
// passes of XB through PASS(mm, ...) into out[m·4 + r], the first pass prefetching the rows gemv_x4_prefetch_rows on.
#define LT_GEMV_X4_ROWS(NAME, TARGET, XB, PASS)                                                     \
  TARGET void NAME(const GemvJob& g, long j0, long j1) {                                            \
    constexpr int R = 4;                                                                            \
    float out[XB * R];                                                                              \
    const long pfr = gemv_x4_prefetch_rows(g.K);                                                    \
    for (long j = j0; j < j1; j += R) {                                                             \
      const float* w[R];                                                                            \
      for (int r = 0; r < R; r++) w[r] = g.W + std::min(j + r, g.N - 1) * g.ldw;                    \
      const long n = std::min<long>(R, g.N - j);                                                    \
      const bool ahead = g.ldw == g.K && j + pfr + R <= j1;                                         \
      for (long i = 0; i < g.M; i += XB) {                                                          \
        const int mm = (int)std::min<long>(XB, g.M - i);                                            \
        PASS(mm, g.K, w, g.A + i * g.lda, g.lda, out, i == 0 && ahead ? g.W + (j + pfr) * g.ldw : nullptr); \
        for (int m = 0; m < mm; m++) {                                                              \
          float* c = g.C + (i + m) * g.ldc + j;                                                     \
          for (long r = 0; r < n; r++) c[r] = g.accumulate ? c[r] + out[m * R + r] : out[m * R + r]; \
        }                                                                                           \
      }                                                                                             \
    }                                                                                               \
  }

LT_TARGET_AVX512 inline __attribute__((always_inline)) void gemv_x4_pass_avx512(int mm, long K, const float* const* w, const float* x, long lda, float* out, const float* pf) {
  switch (mm) {
    case 1: return gemv_x4_avx512<1>(K, w, x, lda, out, pf);
    case 2: return gemv_x4_avx512<2>(K, w, x, lda, out, pf);
    case 3: return gemv_x4_avx512<3>(K, w, x, lda, out, pf);
    default: return gemv_x4_avx512<4>(K, w, x, lda, out, pf);
  }
}

LT_GEMV_X4_ROWS(gemv_x4rows_avx512, LT_TARGET_AVX512, 4, gemv_x4_pass_avx512)

// The same on AVX2 (16 ymm registers), from 4 x rows (at 3 the 1-2 row block was faster): 4 W rows against up to 2
// x rows a pass (8 accumulators), with gemv_block_avx2's accumulation and reduction (8-lane accumulators, the masked
// tail, hsum8_avx2), so again bit for bit the row alone's products. The AMD EPYC above forced onto the AVX2 path
// (LLAMA_TS_SIMD=avx2), 1 thread, CPU time, 8 x rows: mini-15m's matrices 3.1–3.4 → 1.8–2.0 ms, mini-42m's 5.8 →
// 3.8 ms; 4 rows 1.55 → 1.13 ms.
template <int MM>
LT_TARGET_AVX2 inline __attribute__((always_inline)) void gemv_x4_avx2(long K, const float* const* w, const float* x, long lda, float* out, const float* pf) {
  constexpr int R = 4;
  __m256 c[MM * R];
#pragma GCC unroll 8
  for (int a = 0; a < MM * R; a++) c[a] = _mm256_setzero_ps();
  long k = 0;
  for (; k + 8 <= K; k += 8) {
    if (pf && (k & 15) == 0) {
#pragma GCC unroll 4
      for (int r = 0; r < R; r++) _mm_prefetch((const char*)pf + k * 16 + r * 64, _MM_HINT_T1);
    }
    __m256 wv[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
      wv[r] = _mm256_loadu_ps(w[r] + k);
      __asm__("" : "+x"(wv[r]));
    }
#pragma GCC unroll 2
    for (int m = 0; m < MM; m++) {
      __m256 xv = _mm256_loadu_ps(x + m * lda + k);
      __asm__("" : "+x"(xv));
#pragma GCC unroll 4
      for (int r = 0; r < R; r++) c[m * R + r] = _mm256_fmadd_ps(xv, wv[r], c[m * R + r]);
    }
  }
  if (k < K) {
    __m256i mask = tail_mask_avx2(k, K);
    __m256 wv[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) wv[r] = _mm256_maskload_ps(w[r] + k, mask);
#pragma GCC unroll 2
    for (int m = 0; m < MM; m++) {
      __m256 xv = _mm256_maskload_ps(x + m * lda + k, mask);
#pragma GCC unroll 4
      for (int r = 0; r < R; r++) c[m * R + r] = _mm256_fmadd_ps(xv, wv[r], c[m * R + r]);
    }
  }
  __m256 h[8];
#pragma GCC unroll 8
  for (int a = 0; a < 8; a++) h[a] = a < MM * R ? c[a] : _mm256_setzero_ps();
  alignas(32) float t[8];
  _mm256_store_ps(t, hsum8_avx2(h));
  for (int a = 0; a < MM * R; a++) out[a] = t[a];
}

LT_TARGET_AVX2 inline __attribute__((always_inline)) void gemv_x4_pass_avx2(int mm, long K, const float* const* w, const float* x, long lda, float* out, const float* pf) {
  if (mm == 2) return gemv_x4_avx2<2>(K, w, x, lda, out, pf);
  gemv_x4_avx2<1>(K, w, x, lda, out, pf);
}

LT_GEMV_X4_ROWS(gemv_x4rows_avx2, LT_TARGET_AVX2, 2, gemv_x4_pass_avx2)
#endif

void gemv_task(void* ctx, long t) {
  const GemvJob& g = *static_cast<const GemvJob*>(ctx);
  long j0 = t * g.rows_per_task, j1 = std::min(g.N, j0 + g.rows_per_task);
#if LT_X86
  int level = simd_level();
  if (level >= SIMD_AVX512) return g.M >= 3 ? gemv_x4rows_avx512(g, j0, j1) : gemv_rows_avx512(g, j0, j1);
  if (level >= SIMD_AVX2) return g.M >= 4 ? gemv_x4rows_avx2(g, j0, j1) : gemv_rows_avx2(g, j0, j1);
#endif
  gemv_rows_generic(g, j0, j1);
}

// The job and task count gemv_xwt runs C[M,N] (+)= A[M,K]·Wᵀ as.
long gemv_plan(GemvJob& g) {
  const long N = g.N, K = g.K;
  const long nth = pool_threads();
  // Tasks of whole 8-row blocks, at least ~64 KiB of W each (smaller jobs are not worth a hand-off); a few tasks
  // per thread so that a thread slowed down by a neighbour on a shared core does not hold the rest up.
  const long blocks = (N + 7) / 8;
  const long min_blocks = std::max<long>(1, (16384 / std::max<long>(K, 1) + 7) / 8);
  long ntasks = std::min(blocks / min_blocks, nth == 1 ? 1 : nth * 4);
  if (ntasks < 1) ntasks = 1;
  long bpt = (blocks + ntasks - 1) / ntasks;
  g.rows_per_task = bpt * 8;
  return (N + g.rows_per_task - 1) / g.rows_per_task;
}

// C[M,N] (+)= A[M,K]·Wᵀ with W [N,K] row-major (row stride ldw), for a few rows M (see GEMV_MAX_M).
void gemv_xwt(long M, long N, long K, const float* A, long lda, const float* W, long ldw, float* C, long ldc, bool accumulate) {
  GemvJob g{M, N, K, A, lda, W, ldw, C, ldc, accumulate, N};
  parallel_for(gemv_plan(g), gemv_task, &g);
}

// Several such products in one hand-off to the pool: each job's tasks as gemv_xwt would make them, so the same bits.
struct GemvJobs {
  GemvJob job[4];
  long first[5];  // task index where job j starts
};
void gemv_jobs_task(void* ctx, long t) {
  const GemvJobs& js = *static_cast<const GemvJobs*>(ctx);
  int j = 0;
  while (t >= js.first[j + 1]) j++;
  gemv_task(const_cast<GemvJob*>(&js.job[j]), t - js.first[j]);
}
// Products with no rows, no columns or K = 0 (C = 0, or unchanged when accumulating); true when it was one.
bool empty_product(long M, long N, long K, float* C, long ldc, bool accumulate) {
  if (M <= 0 || N <= 0) return true;
  if (K > 0) return false;
  if (!accumulate)
    for (long i = 0; i < M; i++) std::memset(C + i * ldc, 0, sizeof(float) * N);
  return true;
}
}  // namespace

#if LT_X86
LT_TARGET_AVX512 void dot8_avx512(long K, const float* const* w, const float* x, float* out) {
  __m256 s;
  gemv_block_avx512<1>(K, w, x, K, &s);
  _mm256_storeu_ps(out, s);
}
LT_TARGET_AVX2 void dot8_avx2(long K, const float* const* w, const float* x, float* out) {
  __m256 s;
  gemv_block_avx2<1>(K, w, x, K, &s);
  _mm256_storeu_ps(out, s);
}
#endif

void dot_rows(long N, long K, const float* W, long ldw, const float* x, float* out) {
  if (N <= 0) return;
  GemvJob g{1, N, K, x, K, W, ldw, out, N, false, N};
#if LT_X86
  int level = simd_level();
  if (level >= SIMD_AVX512) return gemv_rows_avx512(g, 0, N);
  if (level >= SIMD_AVX2) return gemv_rows_avx2(g, 0, N);
#endif
  gemv_rows_generic(g, 0, N);
}

void sgemm_serial(long M, long N, long K, const float* A, long rsa, long csa, const float* B, long rsb, long csb, float* C,
                  long ldc, bool accumulate) {
  if (empty_product(M, N, K, C, ldc, accumulate)) return;
  const KernelDesc& kd = kernel_for_level(simd_level());
  GemmJob g{M, N, K, A, rsa, csa, B, rsb, csb, C, ldc, 1, accumulate, false, false, &kd, 0, 0, 1, kd.KC};
  g.da = csa == 1 && N <= DIRECT_MAX;
  g.db = csb == 1 && M <= DIRECT_MAX;
  long kcmax = g.db ? 128 : kd.KC;
  long nk = (K + kcmax * 5 / 4 - 1) / (kcmax * 5 / 4);
  g.kc = (K + nk - 1) / nk;
  g.mc = (M + kd.MR - 1) / kd.MR * kd.MR;
  g.nc = (N + kd.NR - 1) / kd.NR * kd.NR;
  gemm_task(&g, 0);
}

void sgemm(long M, long N, long K, const float* A, long rsa, long csa, const float* B, long rsb, long csb, float* C,
           long ldc, bool accumulate) {
  if (empty_product(M, N, K, C, ldc, accumulate)) return;
  // A few rows against Wᵀ (decode, batched decode): dot products over W rows read in place.
  if ((M <= GEMV_MAX_M || (M <= GEMV_MAX_M_LARGE_W && N * K >= GEMV_LARGE_W_FLOATS)) && rsb == 1 && csa == 1) {
    gemv_xwt(M, N, K, A, rsa, B, csb, C, ldc, accumulate);
    return;
  }
  // Few rows against a large W^T (x·Wᵀ in row blocks): compute Cᵀ = W·xᵀ so that W is read in place.
  if (M <= DIRECT_MAX && N > DIRECT_MAX && rsb == 1 && csa == 1) {
    sgemm_impl(N, M, K, B, csb, rsb, A, csa, rsa, C, 1, ldc, accumulate);
    return;
  }
  sgemm_impl(M, N, K, A, rsa, csa, B, rsb, csb, C, ldc, 1, accumulate);
}

void gemv_multi(int n, const long* N, long K, const float* x, const float* const* W, float* const* out) {
  if (n < 1 || n > 4 || K <= 0) {
    for (int j = 0; j < n; j++) sgemm(1, N[j], K, x, K, 1, W[j], 1, K, out[j], N[j], false);
    return;
  }
  GemvJobs js;
  js.first[0] = 0;
  for (int j = 0; j < n; j++) {
    js.job[j] = GemvJob{1, N[j], K, x, K, W[j], K, out[j], N[j], false, N[j]};
    js.first[j + 1] = js.first[j] + (N[j] > 0 ? gemv_plan(js.job[j]) : 0);
  }
  parallel_for(js.first[n], gemv_jobs_task, &js);
}

void sgemm_bf16(long M, long N, long K, const uint16_t* A, long rsa, long csa, const uint16_t* B, long rsb, long csb,
                const uint32_t* Bpairs, float* C, long ldc, bool accumulate) {
  if (empty_product(M, N, K, C, ldc, accumulate)) return;
  const Src16 src{A, Bpairs ? nullptr : B, Bpairs};
  sgemm_impl(M, N, K, nullptr, rsa, csa, nullptr, rsb, csb, C, ldc, 1, accumulate, &src);
}

}  // namespace lt
