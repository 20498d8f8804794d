// bfloat16 GEMM with float32 accumulation. Two paths, chosen at run time (bf16_path):
//   avx512bf16  packed panels of k-pairs and a 12x32 micro-kernel of vdpbf16ps (each instruction: 16 lanes, each
//               lane += a[2k]·b[2k] + a[2k+1]·b[2k+1]), blocked and threaded like the SGEMM (gemm.cc);
//   convert     both operands converted to float32, then the SGEMM (any CPU).
// Reference: src/kernels/ops/bf16.ts; tests: test/bf16.test.ts (every path against the ref backend's bf16 ops).
#include "bgemm.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "gemm.h"
#include "pool.h"
#include "simd.h"
#if LT_X86
#include <cpuid.h>
#include <immintrin.h>
#define LT_TARGET_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma")))
#endif

namespace lt {

// ---------------------------------------------------------------- dispatch

static int g_bf16 = -2;

bool amx_bf16_detected() {
#if LT_X86
  unsigned a, b, c, d;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) return (d >> 22) & 1;
#endif
  return false;
}

// Whether the CPU has AVX512_BF16 (and AVX512BW), asked once: CPUID is an exit to the hypervisor in a virtual machine
// (microseconds), and bf16_path runs at every product.
static bool cpu_has_avx512_bf16() {
#if LT_X86
  static const bool has = [] {
    unsigned a, b, c, d;
    return __builtin_cpu_supports("avx512bw") && __get_cpuid_count(7, 1, &a, &b, &c, &d) && ((a >> 5) & 1);
  }();
  return has;
#else
  return false;
#endif
}

int bf16_detect() { return simd_level() >= SIMD_AVX512 && cpu_has_avx512_bf16() ? BF16_AVX512 : BF16_CONVERT; }

static int bf16_from_env(int best) {
  const char* e = std::getenv("LLAMA_TS_BF16");
  if (e && !std::strcmp(e, "convert")) return BF16_CONVERT;
  return best;
}

int bf16_path() {
  if (g_bf16 == -2) g_bf16 = bf16_from_env(bf16_detect());
  // a SIMD level lowered after the choice (setSimd) lowers the path too
  return std::min(g_bf16, bf16_detect());
}

int bf16_set(int path) {
  int best = bf16_detect();
  g_bf16 = path < 0 ? bf16_from_env(best) : std::min(path, best);
  return g_bf16;
}

const char* bf16_name(int path) { return path == BF16_AVX512 ? "avx512bf16" : "convert"; }

// ---------------------------------------------------------------- conversions

static inline uint16_t round_bf16(float v) {
  uint32_t x;
  std::memcpy(&x, &v, 4);
  if ((x & 0x7f800000u) == 0x7f800000u && (x & 0x7fffffu)) return (uint16_t)((x >> 16) | 0x40);
  return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

LT_CLONES static void to_bf16_range(const float* x, uint16_t* out, long n) {
  for (long i = 0; i < n; i++) out[i] = round_bf16(x[i]);
}
LT_CLONES static void from_bf16_range(const uint16_t* x, float* out, long n) {
  for (long i = 0; i < n; i++) {
    uint32_t u = (uint32_t)x[i] << 16;
    std::memcpy(out + i, &u, 4);
  }
}

#if LT_X86
// round_bf16 with AVX-512 on 8 lanes at a time (GCC vectorises the loop above with its NaN branch at ~2 instructions
// an element; this is ~0.6): the bits of round_bf16 for every input, NaN included. 256-bit vectors: as fast as
// 512-bit ones on data in cache, and faster on Zen 4 when streaming from memory (the weight copy).
LT_TARGET_AVX512 static void to_bf16_avx512(const float* x, uint16_t* out, long n) {
  const __m256i one = _mm256_set1_epi32(1), bias = _mm256_set1_epi32(0x7fff), abs = _mm256_set1_epi32(0x7fffffff),
                inf = _mm256_set1_epi32(0x7f800000), quiet = _mm256_set1_epi32(0x40);
  long i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256i u = _mm256_loadu_si256((const __m256i*)(x + i));
    __m256i hi = _mm256_srli_epi32(u, 16);
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, bias), _mm256_and_si256(hi, one)), 16);
    __mmask8 nan = _mm256_cmpgt_epu32_mask(_mm256_and_si256(u, abs), inf);
    r = _mm256_mask_or_epi32(r, nan, hi, quiet);
    // narrowed in a register, then stored (vpmovdw to memory is microcoded on Zen 4)
    _mm_storeu_si128((__m128i*)(out + i), _mm256_cvtepi32_epi16(r));
  }
  for (; i < n; i++) out[i] = round_bf16(x[i]);
}
#endif

// f32 -> bf16 on this thread: the AVX-512 loop at that SIMD level, else the compiler's
static void to_bf16_any(const float* x, uint16_t* out, long n) {
#if LT_X86
  if (simd_level() >= SIMD_AVX512) return to_bf16_avx512(x, out, n);
#endif
  to_bf16_range(x, out, n);
}

constexpr long CONV_CHUNK = 1 << 14;  // elements a task: 36 tasks for a [2048, 288] activation (even halves on 2 threads)

void f32_to_bf16(const float* x, uint16_t* out, long n) {
  parallel_for((n + CONV_CHUNK - 1) / CONV_CHUNK, [&](long t) {
    long i0 = t * CONV_CHUNK;
    to_bf16_any(x + i0, out + i0, std::min(CONV_CHUNK, n - i0));
  });
}
void f32_to_bf16_serial(const float* x, uint16_t* out, long n) { to_bf16_any(x, out, n); }
void bf16_to_f32(const uint16_t* x, float* out, long n) {
  parallel_for((n + CONV_CHUNK - 1) / CONV_CHUNK, [&](long t) {
    long i0 = t * CONV_CHUNK;
    from_bf16_range(x + i0, out + i0, std::min(CONV_CHUNK, n - i0));
  });
}

namespace {

// A packed B panel: NR columns, each k-pair of a column one uint32 (the lower k in the low half), zero-padded. The
// layout of bf16_pack_b on every CPU; the AVX512_BF16 micro-kernel's B operand.
constexpr int NR = 32;
inline uint32_t pair(uint16_t lo, uint16_t hi) { return (uint32_t)lo | (uint32_t)hi << 16; }

// ---------------------------------------------------------------- the convert path

// The SGEMM widening both operands as it packs them (gemm.cc sgemm_bf16): no float32 copies. (It used to widen
// both into fresh float32 arrays first, and the packed head's products unpacked the whole head per logits block:
// a bf16 step on this path ran at 0.63-0.66x float32.)
void bgemm_convert(long M, long N, long K, const uint16_t* A, long rsa, long csa, const uint16_t* B, long rsb, long csb,
                   float* C, long ldc, bool accumulate) {
  sgemm_bf16(M, N, K, A, rsa, csa, B, rsb, csb, nullptr, C, ldc, accumulate);
}

#if LT_X86
// ---------------------------------------------------------------- the AVX512_BF16 path

constexpr int MR = 12, MC = 96, KC = 384, NC = 512;


// 16x16 transpose of 32-bit elements: r[i] lane j -> r[j] lane i (unpack 32-bit and 64-bit within 128-bit lanes,
// then move the 128-bit lanes twice).
LT_TARGET_BF16 inline void transpose16(__m512i r[16]) {
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  for (int h = 0; h < 16; h += 8)
    for (int i = 0; i < 4; i++) {
      t[h + i] = _mm512_shuffle_i32x4(r[h + i], r[h + i + 4], 0x88);
      t[h + i + 4] = _mm512_shuffle_i32x4(r[h + i], r[h + i + 4], 0xdd);
    }
  for (int i = 0; i < 8; i++) {
    r[i] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0xdd);
  }
}

// The k-pairs of up to 16 rows stored along k (row r at src + r*rs, its pair q = src[r*rs + 2q], src[r*rs + 2q + 1]),
// transposed: dst[q*W + r] for q < kfull, the `lanes` lanes from r = 0, rows m <= r < lanes zero. Used where a
// panel's rows are the rows of a row-major operand (x·Wᵀ's x and W, dy·W's dy): a 16x16 transpose per 16 pairs
// instead of one scattered 32-bit store per pair.
LT_TARGET_BF16 void transpose_pairs(const uint16_t* src, long rs, long m, long kfull, uint32_t* dst, long W, int lanes) {
  const __mmask16 st = (__mmask16)((1u << lanes) - 1);
  for (long q0 = 0; q0 < kfull; q0 += 16) {
    long nq = std::min<long>(16, kfull - q0);
    const __mmask16 ld = (__mmask16)((1u << nq) - 1);
    __m512i r[16];
    for (int i = 0; i < 16; i++) r[i] = i < m ? _mm512_maskz_loadu_epi32(ld, src + i * rs + 2 * q0) : _mm512_setzero_si512();
    transpose16(r);
    for (long j = 0; j < nq; j++) _mm512_mask_storeu_epi32(dst + (q0 + j) * W, st, r[j]);
  }
}

// Ap: ceil(mc/MR) panels, each kp x MR pairs (row r at [kp*MR + r] = A[r][2kp], A[r][2kp+1]), zero-padded.
LT_TARGET_BF16 void pack_a(const uint16_t* A, long rsa, long csa, long i0, long k0, long mc, long kc, uint32_t* Ap) {
  long kp = (kc + 1) / 2, kfull = kc / 2;
  for (long p = 0; p < mc; p += MR) {
    long m = std::min<long>(MR, mc - p);
    uint32_t* dst = Ap + p * kp;
    const uint16_t* src = A + (i0 + p) * rsa + k0 * csa;
    if (csa == 1) {
      transpose_pairs(src, rsa, m, kfull, dst, MR, MR);  // rows m.. zero
      if (kp > kfull)
        for (long r = 0; r < MR; r++) dst[kfull * MR + r] = r < m ? pair(src[r * rsa + kc - 1], 0) : 0;
      continue;
    } else if (rsa == 1 && m == MR) {
      // A stored transposed (the backward's dyᵀ): the MR rows of a panel are MR consecutive values of each stored
      // row; interleave two stored rows into MR pairs (unpack within 128-bit lanes, then put the lanes in order)
      for (long q = 0; q < kp; q++) {
        const uint16_t* s0 = src + 2 * q * csa;
        __m256i r0 = _mm256_maskz_loadu_epi16((__mmask16)0x0FFF, s0);
        __m256i r1 = 2 * q + 1 < kc ? _mm256_maskz_loadu_epi16((__mmask16)0x0FFF, s0 + csa) : _mm256_setzero_si256();
        __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_unpacklo_epi16(r0, r1)), _mm256_unpackhi_epi16(r0, r1), 1);
        _mm512_mask_storeu_epi32(dst + q * MR, (__mmask16)0x0FFF, _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0)));
      }
    } else {
      for (long q = 0; q < kp; q++) {
        const uint16_t* s0 = src + 2 * q * csa;
        const uint16_t* s1 = 2 * q + 1 < kc ? s0 + csa : nullptr;
        for (long r = 0; r < m; r++) dst[q * MR + r] = pair(s0[r * rsa], s1 ? s1[r * rsa] : 0);
      }
    }
    if (m < MR)
      for (long q = 0; q < kp; q++)
        for (long r = m; r < MR; r++) dst[q * MR + r] = 0;
  }
}

// Bp: ceil(nc/NR) panels, each kp x NR pairs (column c at [kp*NR + c] = B[2kp][c], B[2kp+1][c]), zero-padded.
LT_TARGET_BF16 void pack_b(const uint16_t* B, long rsb, long csb, long k0, long j0, long kc, long nc, uint32_t* Bp) {
  long kp = (kc + 1) / 2;
  for (long q0 = 0; q0 < nc; q0 += NR) {
    long n = std::min<long>(NR, nc - q0);
    uint32_t* dst = Bp + q0 * kp;
    const uint16_t* src = B + k0 * rsb + (j0 + q0) * csb;
    if (csb == 1) {
      for (long q = 0; q < kp; q++) {
        const uint16_t* s0 = src + 2 * q * rsb;
        const uint16_t* s1 = 2 * q + 1 < kc ? s0 + rsb : nullptr;
        uint32_t* d = dst + q * NR;
        if (n == NR && s1) {  // interleave two rows of 32: unpack within 128-bit lanes, then put the lanes in order
          __m512i r0 = _mm512_loadu_si512(s0), r1 = _mm512_loadu_si512(s1);
          __m512i lo = _mm512_unpacklo_epi16(r0, r1), hi = _mm512_unpackhi_epi16(r0, r1);
          const __m512i i0 = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0), i1 = _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4);
          _mm512_storeu_si512(d, _mm512_permutex2var_epi64(lo, i0, hi));
          _mm512_storeu_si512(d + 16, _mm512_permutex2var_epi64(lo, i1, hi));
          continue;
        }
        long c = 0;
        for (; c < n; c++) d[c] = pair(s0[c], s1 ? s1[c] : 0);
        for (; c < NR; c++) d[c] = 0;
      }
    } else if (rsb == 1) {
      long kfull = kc / 2;
      for (long g = 0; g < NR; g += 16) transpose_pairs(src + g * csb, csb, std::max<long>(0, std::min<long>(16, n - g)), kfull, dst + g, NR, 16);
      if (kp > kfull)
        for (long c = 0; c < NR; c++) dst[kfull * NR + c] = c < n ? pair(src[c * csb + kc - 1], 0) : 0;
    } else {
      for (long c = 0; c < n; c++) {
        const uint16_t* s = src + c * csb;
        for (long q = 0; q < kp; q++) dst[q * NR + c] = pair(s[2 * q * rsb], 2 * q + 1 < kc ? s[(2 * q + 1) * rsb] : 0);
      }
      for (long c = n; c < NR; c++)
        for (long q = 0; q < kp; q++) dst[q * NR + c] = 0;
    }
  }
}

// C[MR,NR] (+)= A·B over kp pairs of k: 24 accumulators, 2 B vectors, 1 broadcast pair.
LT_TARGET_BF16 void ukr(long kp, const uint32_t* A, const uint32_t* B, float* C, long ldc, bool acc) {
  __m512 c[MR][2];
#pragma GCC unroll 12
  for (int i = 0; i < MR; i++) c[i][0] = c[i][1] = _mm512_setzero_ps();
#pragma GCC unroll 2
  for (long q = 0; q < kp; q++) {
    __m512i b0 = _mm512_loadu_si512(B + q * NR), b1 = _mm512_loadu_si512(B + q * NR + 16);
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) {
      __m512i a = _mm512_set1_epi32((int)A[q * MR + i]);
      c[i][0] = _mm512_dpbf16_ps(c[i][0], (__m512bh)a, (__m512bh)b0);
      c[i][1] = _mm512_dpbf16_ps(c[i][1], (__m512bh)a, (__m512bh)b1);
    }
  }
#pragma GCC unroll 12
  for (int i = 0; i < MR; i++) {
    float* p = C + i * ldc;
    if (acc) {
      c[i][0] = _mm512_add_ps(c[i][0], _mm512_loadu_ps(p));
      c[i][1] = _mm512_add_ps(c[i][1], _mm512_loadu_ps(p + 16));
    }
    _mm512_storeu_ps(p, c[i][0]);
    _mm512_storeu_ps(p + 16, c[i][1]);
  }
}

struct Job {
  long M, N, K;
  const uint16_t* A;
  long rsa, csa;
  const uint16_t* B;
  long rsb, csb;
  float* C;
  long ldc;
  bool accumulate;
  long mc, nc, tiles_n, kc;
  const uint32_t* Bpk;  // B packed once for the whole K (bf16_pack_b), or null: each task packs its blocks
};

// Rows of A packed at once when B comes packed: each B panel (in L1) meets all of them before the next is read.
constexpr long MCP = 384;

struct Scratch {
  std::vector<uint32_t> a, b;
};
thread_local Scratch tl;

// A task owns an m-range x n-range of C; per K block it packs its B block once (or finds it packed) and walks its
// rows in blocks of MC (MCP) rows.
void task(void* ctx, long t) {
  const Job& g = *static_cast<const Job*>(ctx);
  long i0 = (t / g.tiles_n) * g.mc, j0 = (t % g.tiles_n) * g.nc;
  long mr = std::min(g.mc, g.M - i0), nc = std::min(g.nc, g.N - j0);
  long ncp = (nc + NR - 1) / NR * NR;
  const size_t kpmax = (size_t)(g.kc + 1) / 2;
  const long rb = g.Bpk ? MCP : MC;
  if (tl.a.size() < (size_t)rb * kpmax) tl.a.resize((size_t)rb * kpmax);
  if (!g.Bpk && tl.b.size() < (size_t)ncp * kpmax) tl.b.resize((size_t)ncp * kpmax);
  uint32_t* Ap = tl.a.data();
  alignas(64) float tmp[MR * NR];
  const long kpt = (g.K + 1) / 2;  // pairs of a packed B panel
  for (long k0 = 0; k0 < g.K; k0 += g.kc) {
    long kc = std::min<long>(g.kc, g.K - k0), kp = (kc + 1) / 2;
    bool acc = g.accumulate || k0 > 0;
    // Bp: the first panel of this task's columns at this K block; pstride: from one panel to the next
    const uint32_t* Bp;
    long pstride;
    if (g.Bpk) {
      Bp = g.Bpk + (j0 / NR) * kpt * NR + (k0 / 2) * NR;  // k0 is even (every K block but the last is)
      pstride = kpt * NR;
    } else {
      pack_b(g.B, g.rsb, g.csb, k0, j0, kc, nc, tl.b.data());
      Bp = tl.b.data();
      pstride = kp * NR;
    }
    for (long is = 0; is < mr; is += rb) {
      long mc = std::min<long>(rb, mr - is);
      pack_a(g.A, g.rsa, g.csa, i0 + is, k0, mc, kc, Ap);
      for (long jr = 0; jr < nc; jr += NR) {
        long n = std::min<long>(NR, nc - jr);
        const uint32_t* b = Bp + (jr / NR) * pstride;
        for (long ir = 0; ir < mc; ir += MR) {
          long m = std::min<long>(MR, mc - ir);
          float* c = g.C + (i0 + is + ir) * g.ldc + j0 + jr;
          if (m == MR && n == NR) {
            ukr(kp, Ap + ir * kp, b, c, g.ldc, acc);
          } else {
            ukr(kp, Ap + ir * kp, b, tmp, NR, false);
            for (long i = 0; i < m; i++)
              for (long j = 0; j < n; j++) c[i * g.ldc + j] = acc ? c[i * g.ldc + j] + tmp[i * NR + j] : tmp[i * NR + j];
          }
        }
      }
    }
  }
}

void bgemm_avx512(long M, long N, long K, const uint16_t* A, long rsa, long csa, const uint16_t* B, long rsb, long csb,
                  float* C, long ldc, bool accumulate, const uint32_t* Bpk) {
  Job g{M, N, K, A, rsa, csa, B, rsb, csb, C, ldc, accumulate, 0, 0, 0, 0, Bpk};
  // K blocks of equal, even size up to 1.25·KC (K = 288 is one block, not 256 + 32): each block is one more pass
  // over C, which for the output head (C = tokens × 32000 floats) is a pass over hundreds of megabytes.
  long nk = (K + KC * 5 / 4 - 1) / (KC * 5 / 4);
  g.kc = ((K + nk - 1) / nk + 1) / 2 * 2;
  // the task grid as the SGEMM chooses it: enough tasks for every thread, as little packing as possible (a packed
  // element costs about as much as 30 flops of this kernel). B packed already: only A is packed (once per column
  // range), and each row range reads all of its packed B (an element read about as much as 5 flops).
  const long nth = pool_threads();
  const long nt0 = Bpk ? 1 : (N + NC - 1) / NC;
  const long mtmax = (M + MR - 1) / MR, ntmax = (N + NR - 1) / NR;
  const double packB = Bpk ? 5.0 : 30.0;
  double best = 1e300;
  for (long mt = 1; mt <= std::min(mtmax, 8 * nth); mt++) {
    long mc = ((M + mt - 1) / mt + MR - 1) / MR * MR;
    long mta = (M + mc - 1) / mc;
    for (long nt = nt0; nt <= std::min(ntmax, nt0 * 8); nt++) {
      long nc = ((N + nt - 1) / nt + NR - 1) / NR * NR;
      long nta = (N + nc - 1) / nc;
      long tasks = mta * nta;
      double waves = (double)((tasks + nth - 1) / nth) * nth / tasks;
      double compute = 2.0 * (double)(mta * mc) * (double)(nta * nc) * K * waves / nth;
      double pack = (30.0 * nta * M * K + packB * mta * N * K) / std::min(nth, tasks);
      if (compute + pack < best * 0.999) {
        best = compute + pack;
        g.mc = mc;
        g.nc = nc;
      }
    }
  }
  g.tiles_n = (N + g.nc - 1) / g.nc;
  parallel_for(((M + g.mc - 1) / g.mc) * g.tiles_n, task, &g);
}
#endif

}  // namespace

#if LT_X86
void bf16_transpose_pairs(const uint16_t* src, long rs, long m, long kfull, uint32_t* dst, long W, int lanes) {
  transpose_pairs(src, rs, m, kfull, dst, W, lanes);
}
#endif

void bgemm(long M, long N, long K, const uint16_t* A, long rsa, long csa, const uint16_t* B, long rsb, long csb, float* C,
           long ldc, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!accumulate)
      for (long i = 0; i < M; i++) std::memset(C + i * ldc, 0, sizeof(float) * N);
    return;
  }
#if LT_X86
  if (bf16_path() == BF16_AVX512) return bgemm_avx512(M, N, K, A, rsa, csa, B, rsb, csb, C, ldc, accumulate, nullptr);
#endif
  bgemm_convert(M, N, K, A, rsa, csa, B, rsb, csb, C, ldc, accumulate);
}

// ---------------------------------------------------------------- B packed once

long bf16_packed_size(long K, long N) { return (K + 1) / 2 * ((N + NR - 1) / NR * NR); }

// Columns [j0, j0 + n) of B over all K as panels (panel p at out + p*kpt*NR), by the AVX-512 packer where it runs.
static void pack_panels(const uint16_t* B, long rsb, long csb, long K, long j0, long n, uint32_t* out) {
#if LT_X86
  if (bf16_path() == BF16_AVX512) return pack_b(B, rsb, csb, 0, j0, K, n, out);
#endif
  const long kpt = (K + 1) / 2;
  for (long p = 0; p * NR < n; p++) {
    uint32_t* dst = out + p * kpt * NR;
    for (long q = 0; q < kpt; q++)
      for (long c = 0; c < NR; c++) {
        const long j = j0 + p * NR + c;
        dst[q * NR + c] = p * NR + c < n ? pair(B[2 * q * rsb + j * csb], 2 * q + 1 < K ? B[(2 * q + 1) * rsb + j * csb] : 0) : 0;
      }
  }
}

void bf16_pack_b(const uint16_t* B, long rsb, long csb, long K, long N, uint32_t* out) {
  const long kpt = (K + 1) / 2, panels = (N + NR - 1) / NR, per = 4;  // panels per task
  parallel_for((panels + per - 1) / per, [&](long t) {
    long j0 = t * per * NR, n = std::min<long>(per * NR, N - j0);
    if (K > 0) pack_panels(B, rsb, csb, K, j0, n, out + j0 * kpt);
  });
}

void bgemm_packed(long M, long N, long K, const uint16_t* A, long rsa, long csa, const uint32_t* Bp, long rsb, long csb,
                  float* C, long ldc, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) return bgemm(M, N, K, A, rsa, csa, nullptr, 0, 0, C, ldc, accumulate);
#if LT_X86
  if (bf16_path() == BF16_AVX512) return bgemm_avx512(M, N, K, A, rsa, csa, nullptr, 0, 0, C, ldc, accumulate, Bp);
#endif
  // the convert path: the SGEMM packs B's float32 panels straight from the k-pair panels (the same panels, and so
  // the same sums, as from B unpacked: every operand of sgemm_bf16 is packed)
  sgemm_bf16(M, N, K, A, rsa, csa, nullptr, rsb, csb, Bp, C, ldc, accumulate);
}

}  // namespace lt
