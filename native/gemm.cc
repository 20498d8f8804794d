#include "gemm.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "pool.h"
#include "simd.h"
#if LT_X86
#include <immintrin.h>
#endif

namespace lt {
namespace {

typedef void (*Ukr)(long kc, const float* A, const float* B, float* C, long ldc, bool acc);

struct KernelDesc {
  int MR, NR, MC, KC, NC;
  Ukr ukr;
};

// ---------------------------------------------------------------- micro-kernels

// Portable: the compiler vectorises the NR loop with whatever the baseline ISA has.
constexpr int G_MR = 4, G_NR = 16;
void ukr_generic(long kc, const float* A, const float* B, float* C, long ldc, bool acc) {
  float c[G_MR][G_NR];
  for (int i = 0; i < G_MR; i++)
    for (int j = 0; j < G_NR; j++) c[i][j] = 0.f;
  for (long k = 0; k < kc; k++) {
    for (int i = 0; i < G_MR; i++) {
      float a = A[i];
      for (int j = 0; j < G_NR; j++) c[i][j] += a * B[j];
    }
    A += G_MR;
    B += G_NR;
  }
  for (int i = 0; i < G_MR; i++)
    for (int j = 0; j < G_NR; j++) C[i * ldc + j] = acc ? C[i * ldc + j] + c[i][j] : c[i][j];
}

#if LT_X86
// AVX2/FMA 6x16: 12 accumulators, 2 B vectors, 1 broadcast.
LT_TARGET_AVX2 void ukr_avx2_6x16(long kc, const float* A, const float* B, float* C, long ldc, bool acc) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps(), c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps(), c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  for (long k = 0; k < kc; k++) {
    __m256 b0 = _mm256_load_ps(B), b1 = _mm256_load_ps(B + 8);
    __m256 a;
    a = _mm256_broadcast_ss(A + 0); c00 = _mm256_fmadd_ps(a, b0, c00); c01 = _mm256_fmadd_ps(a, b1, c01);
    a = _mm256_broadcast_ss(A + 1); c10 = _mm256_fmadd_ps(a, b0, c10); c11 = _mm256_fmadd_ps(a, b1, c11);
    a = _mm256_broadcast_ss(A + 2); c20 = _mm256_fmadd_ps(a, b0, c20); c21 = _mm256_fmadd_ps(a, b1, c21);
    a = _mm256_broadcast_ss(A + 3); c30 = _mm256_fmadd_ps(a, b0, c30); c31 = _mm256_fmadd_ps(a, b1, c31);
    a = _mm256_broadcast_ss(A + 4); c40 = _mm256_fmadd_ps(a, b0, c40); c41 = _mm256_fmadd_ps(a, b1, c41);
    a = _mm256_broadcast_ss(A + 5); c50 = _mm256_fmadd_ps(a, b0, c50); c51 = _mm256_fmadd_ps(a, b1, c51);
    A += 6;
    B += 16;
  }
#define LT_ST(r, x0, x1)                                                        \
  {                                                                             \
    float* p = C + (r) * ldc;                                                   \
    if (acc) {                                                                  \
      x0 = _mm256_add_ps(x0, _mm256_loadu_ps(p));                               \
      x1 = _mm256_add_ps(x1, _mm256_loadu_ps(p + 8));                           \
    }                                                                           \
    _mm256_storeu_ps(p, x0);                                                    \
    _mm256_storeu_ps(p + 8, x1);                                                \
  }
  LT_ST(0, c00, c01) LT_ST(1, c10, c11) LT_ST(2, c20, c21) LT_ST(3, c30, c31) LT_ST(4, c40, c41) LT_ST(5, c50, c51)
#undef LT_ST
}

// AVX-512 8x32: 16 accumulators, 2 B vectors, broadcasts from memory.
LT_TARGET_AVX512 void ukr_avx512_8x32(long kc, const float* A, const float* B, float* C, long ldc, bool acc) {
  __m512 c[8][2];
  for (int i = 0; i < 8; i++) c[i][0] = c[i][1] = _mm512_setzero_ps();
  for (long k = 0; k < kc; k++) {
    __m512 b0 = _mm512_load_ps(B), b1 = _mm512_load_ps(B + 16);
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
      __m512 a = _mm512_set1_ps(A[i]);
      c[i][0] = _mm512_fmadd_ps(a, b0, c[i][0]);
      c[i][1] = _mm512_fmadd_ps(a, b1, c[i][1]);
    }
    A += 8;
    B += 32;
  }
#pragma GCC unroll 8
  for (int i = 0; i < 8; i++) {
    float* p = C + i * ldc;
    if (acc) {
      c[i][0] = _mm512_add_ps(c[i][0], _mm512_loadu_ps(p));
      c[i][1] = _mm512_add_ps(c[i][1], _mm512_loadu_ps(p + 16));
    }
    _mm512_storeu_ps(p, c[i][0]);
    _mm512_storeu_ps(p + 16, c[i][1]);
  }
}
#endif

const KernelDesc& kernel_for_level(int level) {
  static const KernelDesc generic = {G_MR, G_NR, 64, 256, 512, ukr_generic};
#if LT_X86
  static const KernelDesc avx2 = {6, 16, 96, 256, 512, ukr_avx2_6x16};
  static const KernelDesc avx512 = {8, 32, 128, 256, 512, ukr_avx512_8x32};
  if (level >= SIMD_AVX512) return avx512;
  if (level >= SIMD_AVX2) return avx2;
#endif
  (void)level;
  return generic;
}

// ---------------------------------------------------------------- packing

// Ap: ceil(mc/MR) panels, each kc x MR (row r of the panel at [k*MR + r]), zero-padded.
void pack_a(const float* A, long rsa, long csa, long i0, long k0, long mc, long kc, int MR, float* Ap) {
  for (long p = 0; p < mc; p += MR) {
    long m = std::min<long>(MR, mc - p);
    float* dst = Ap + p * kc;
    const float* src = A + (i0 + p) * rsa + k0 * csa;
    if (csa == 1) {
      for (long r = 0; r < m; r++) {
        const float* s = src + r * rsa;
        for (long k = 0; k < kc; k++) dst[k * MR + r] = s[k];
      }
    } else if (rsa == 1 && m == MR) {
      for (long k = 0; k < kc; k++) {
        const float* s = src + k * csa;
        for (int r = 0; r < MR; r++) dst[k * MR + r] = s[r];
      }
    } else {
      for (long k = 0; k < kc; k++)
        for (long r = 0; r < m; r++) dst[k * MR + r] = src[r * rsa + k * csa];
    }
    if (m < MR)
      for (long k = 0; k < kc; k++)
        for (long r = m; r < MR; r++) dst[k * MR + r] = 0.f;
  }
}

// Bp: ceil(nc/NR) panels, each kc x NR (column c of the panel at [k*NR + c]), zero-padded.
void pack_b(const float* B, long rsb, long csb, long k0, long j0, long kc, long nc, int NR, float* Bp) {
  for (long q = 0; q < nc; q += NR) {
    long n = std::min<long>(NR, nc - q);
    float* dst = Bp + q * kc;
    const float* src = B + k0 * rsb + (j0 + q) * csb;
    if (csb == 1 && n == NR) {
      for (long k = 0; k < kc; k++) std::memcpy(dst + k * NR, src + k * rsb, sizeof(float) * NR);
    } else if (rsb == 1) {
      // B is W^T with W row-major: each column of the panel is a contiguous row of W (a transpose)
      for (long c = 0; c < n; c++) {
        const float* s = src + c * csb;
        for (long k = 0; k < kc; k++) dst[k * NR + c] = s[k];
      }
      for (long c = n; c < NR; c++)
        for (long k = 0; k < kc; k++) dst[k * NR + c] = 0.f;
    } else {
      for (long k = 0; k < kc; k++) {
        long c = 0;
        for (; c < n; c++) dst[k * NR + c] = src[k * rsb + c * csb];
        for (; c < NR; c++) dst[k * NR + c] = 0.f;
      }
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
  long ldc;
  bool accumulate;
  const KernelDesc* kd;
  long mc, nc, tiles_n;
};

void gemm_task(void* ctx, long t) {
  const GemmJob& g = *static_cast<const GemmJob*>(ctx);
  const KernelDesc& kd = *g.kd;
  const int MR = kd.MR, NR = kd.NR;
  const long KC = kd.KC;
  long i0 = (t / g.tiles_n) * g.mc, j0 = (t % g.tiles_n) * g.nc;
  long mc = std::min(g.mc, g.M - i0), nc = std::min(g.nc, g.N - j0);
  long mcp = (mc + MR - 1) / MR * MR, ncp = (nc + NR - 1) / NR * NR;
  Scratch& s = tl_scratch;
  float* Ap = grow(s.a, s.a_cap, (size_t)mcp * KC);
  float* Bp = grow(s.b, s.b_cap, (size_t)ncp * KC);
  alignas(64) float tmp[16 * 32];
  for (long k0 = 0; k0 < g.K; k0 += KC) {
    long kc = std::min(KC, g.K - k0);
    bool acc = g.accumulate || k0 > 0;
    pack_b(g.B, g.rsb, g.csb, k0, j0, kc, nc, NR, Bp);
    pack_a(g.A, g.rsa, g.csa, i0, k0, mc, kc, MR, Ap);
    for (long jr = 0; jr < nc; jr += NR) {
      long n = std::min<long>(NR, nc - jr);
      const float* bp = Bp + jr * kc;
      for (long ir = 0; ir < mc; ir += MR) {
        long m = std::min<long>(MR, mc - ir);
        const float* ap = Ap + ir * kc;
        float* c = g.C + (i0 + ir) * g.ldc + j0 + jr;
        if (m == MR && n == NR) {
          kd.ukr(kc, ap, bp, c, g.ldc, acc);
        } else {
          kd.ukr(kc, ap, bp, tmp, NR, false);
          for (long i = 0; i < m; i++)
            for (long j = 0; j < n; j++) c[i * g.ldc + j] = acc ? c[i * g.ldc + j] + tmp[i * NR + j] : tmp[i * NR + j];
        }
      }
    }
  }
}

}  // namespace

void sgemm(long M, long N, long K, const float* A, long rsa, long csa, const float* B, long rsb, long csb, float* C,
           long ldc, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!accumulate)
      for (long i = 0; i < M; i++) std::memset(C + i * ldc, 0, sizeof(float) * N);
    return;
  }
  const KernelDesc& kd = kernel_for_level(simd_level());
  GemmJob g{M, N, K, A, rsa, csa, B, rsb, csb, C, ldc, accumulate, &kd, kd.MC, kd.NC, 0};
  // no block much larger than the matrix
  g.mc = std::min(g.mc, (M + kd.MR - 1) / kd.MR * kd.MR);
  g.nc = std::min(g.nc, (N + kd.NR - 1) / kd.NR * kd.NR);
  // enough blocks of C for every thread to get several (2 threads and a 288x288 weight gradient must still split)
  long want = 4L * pool_threads();
  auto tiles = [&](long mc, long nc) { return ((M + mc - 1) / mc) * ((N + nc - 1) / nc); };
  while (tiles(g.mc, g.nc) < want) {
    bool can_m = g.mc >= 2L * kd.MR, can_n = g.nc >= 4L * kd.NR;
    if (can_n && (g.nc >= 2 * g.mc || !can_m)) g.nc = (g.nc / 2 + kd.NR - 1) / kd.NR * kd.NR;
    else if (can_m) g.mc = (g.mc / 2 + kd.MR - 1) / kd.MR * kd.MR;
    else break;
  }
  g.tiles_n = (N + g.nc - 1) / g.nc;
  long ntasks = ((M + g.mc - 1) / g.mc) * g.tiles_n;
  parallel_for(ntasks, gemm_task, &g);
}

}  // namespace lt
