// Q4_0 products over weights repacked 8 rows at a time (llama.cpp's "REPACK" idea): out[M,N] (+)= x[M,K]·wᵀ with
// int8 activations, for decode (M < QUANT_GEMM_ROWS) and prefill (any M: up to 15 rows of x per pass over a group). The layout (made once at load by the op repackQ4_0x8; repackX8 in src/kernels/ops/quant.ts, which holds the
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
#include <cstring>
#include <vector>

#include "pool.h"
#include "quant.h"
#include "simd.h"

#if LT_X86
#include <immintrin.h>
#endif

namespace lt {

namespace {

const long X8_BLOCK = 144;     // bytes of one Q4_0 group's block: 8 scales + 128 nibble bytes
const long X8_BLOCK_Q8 = 272;  // Q8_0: 8 scales + 256 int8

// one group (8 rows) against one quantized activation row: o[r] = Σ over blocks, r = 0..7, in the per-row kernel's order
void gemv_x8_generic1(const uint8_t* w, const int8_t* q, const float* d, const int32_t* s, long nb, float* o) {
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
void gemv_x8_generic(const uint8_t* w, const int8_t* q, const float* d, const int32_t* s, long nb, long M, long K, float* o) {
  for (long m = 0; m < M; m++) gemv_x8_generic1(w, q + m * K, d + m * nb, s + m * nb, nb, o + 8 * m);
}

void gemv_q8x8_generic1(const uint8_t* w, const int8_t* q, const float* d, const int32_t* s, long nb, float* o) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (long b = 0; b < nb; b++, w += X8_BLOCK_Q8) {
    const int8_t* qb = q + 32 * b;
    for (int r = 0; r < 8; r++) {
      int32_t sum = 0;
      for (int c = 0; c < 8; c++)
        for (int i = 0; i < 4; i++) sum += (int8_t)w[16 + 32 * c + 4 * r + i] * qb[4 * c + i];
      acc[r] += half_to_float(w + 2 * r) * d[b] * (float)sum;
    }
  }
  for (int r = 0; r < 8; r++) o[r] = acc[r];
}
void gemv_q8x8_generic(const uint8_t* w, const int8_t* q, const float* d, const int32_t* s, long nb, long M, long K, float* o) {
  for (long m = 0; m < M; m++) gemv_q8x8_generic1(w, q + m * K, d + m * nb, s + m * nb, nb, o + 8 * m);
}

#if LT_X86
namespace x8avx2 {
#define QT __attribute__((target("avx2,fma,f16c")))
#define LT_Q_VNNI 0
#include "quant-x8-simd.inc"
#undef LT_Q_VNNI
#undef QT
}  // namespace x8avx2
namespace x8vnni {
#define QT __attribute__((target("avx512f,avx512vl,avx512bw,avx512vnni,avx2,fma,f16c")))
#define LT_Q_VNNI 1
#include "quant-x8-simd.inc"
#undef LT_Q_VNNI
#undef QT
}  // namespace x8vnni
#endif

// one group (8 rows) against M ≤ 15 quantized activation rows (q, d, s of row m at m·K, m·K/32): o[8m + r]
using GemvFn = void (*)(const uint8_t*, const int8_t*, const float*, const int32_t*, long, long, long, float*);

// two groups (16 rows, the second gs bytes after the first) against M rows of x: o[16m + r]
using Gemv16Fn = void (*)(const uint8_t*, long, const int8_t*, const float*, const int32_t*, long, long, long, float*);

Gemv16Fn gemv16_for(bool q8) {
#if LT_X86
  static const bool has_vnni = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw");
  // Zen4 (512-bit operations split in two): the one-group 256-bit VNNI kernels, which read one stream, decoded faster
  // than the two-group ones even with their prefetch in memory order (mini-42m Q8_0, one thread: 369-442 against
  // 312-372 tokens/s, 259-287 before that prefetch; mini-110m Q4_0 179-210 against 170-186, 130-156 before)
  if (simd_level() >= SIMD_AVX512 && has_vnni && !simd_split_512()) return q8 ? x8vnni::gemv_q8x16 : x8vnni::gemv_x16;
#endif
  return nullptr;
}

GemvFn gemv_for(bool q8) {
#if LT_X86
  static const bool has_vnni = __builtin_cpu_supports("avx512vnni");
  int level = simd_level();
  if (level >= SIMD_AVX512 && has_vnni) return q8 ? x8vnni::gemv_q8x8 : x8vnni::gemv_x8;
  if (level >= SIMD_AVX2 && __builtin_cpu_supports("f16c")) return q8 ? x8avx2::gemv_q8x8 : x8avx2::gemv_x8;
#endif
  return q8 ? gemv_q8x8_generic : gemv_x8_generic;
}

// the 8-row products of Q4_0 (q8 false) or Q8_0 (q8 true) over their repacked weights
void matmul_x8(bool q8, long M, long K, long N, const float* x, const uint8_t* w, float* out, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  const long nb = K / 32, groups = (N + 7) / 8, gb = nb * (q8 ? X8_BLOCK_Q8 : X8_BLOCK);
  const QuantizedRows xq = quantize_rows(x, M, K);
  const int8_t* q = xq.q;
  const float* d = xq.d;
  const int32_t* s = xq.s;
  const GemvFn gemv = gemv_for(q8);
  const Gemv16Fn gemv16 = gemv16_for(q8);
  // tasks: runs of groups, about 4 per thread; each block of a group is unpacked once for up to R rows of x at a
  // time (the kernels' limit), and the group stays in L1 for the next R rows: prefill reads each weight once.
  constexpr long R = QUANT_GEMM_ROWS - 1;
  long per = groups / (4L * pool_threads());
  if (per < 1) per = 1;
  const long tasks = (groups + per - 1) / per;
  parallel_for(tasks, [&](long t) {
    const long g1 = std::min(groups, (t + 1) * per);
    for (long g = t * per; g < g1;) {
      // two groups at once where the 512-bit kernel runs (its 16 lanes), else one
      const long ng = gemv16 && g + 1 < g1 ? 2 : 1, n0 = 8 * g, nr = std::min(8 * ng, N - n0);
      for (long m0 = 0; m0 < M; m0 += R) {
        const long mr = std::min(R, M - m0);
        float v[16 * 16];
        const int8_t* qm = q + m0 * K;
        if (ng == 2) gemv16(w + g * gb, gb, qm, d + m0 * nb, s + m0 * nb, nb, mr, K, v);
        else gemv(w + g * gb, qm, d + m0 * nb, s + m0 * nb, nb, mr, K, v);
        for (long m = 0; m < mr; m++) {
          float* o = out + (m0 + m) * N + n0;
          const float* vm = v + 8 * ng * m;
          if (accumulate) for (long r = 0; r < nr; r++) o[r] += vm[r];
          else for (long r = 0; r < nr; r++) o[r] = vm[r];
        }
      }
      g += ng;
    }
  });
}

}  // namespace

void matmul_q4_0x8(long M, long K, long N, const float* x, const uint8_t* w, float* out, bool accumulate) {
  matmul_x8(false, M, K, N, x, w, out, accumulate);
}
void matmul_q8_0x8(long M, long K, long N, const float* x, const uint8_t* w, float* out, bool accumulate) {
  matmul_x8(true, M, K, N, x, w, out, accumulate);
}

// w [N, K] in Q4_0 (q8 false) or Q8_0 blocks, row-major -> out in the 8-row layout above (repackX8Into in
// src/kernels/ops/quant.ts is the reference): per group of 8 rows and block of 32 columns, the 8 scales, then chunks of
// 32 bytes holding 4 bytes of each row. Written in order, the padding rows' bytes zeroed.
void repack_x8(bool q8, long N, long K, const uint8_t* w, uint8_t* out) {
  const long bb = q8 ? 34 : 18, chunks = (bb - 2) / 4, nb = K / 32, rb = nb * bb, B = 8 * bb, groups = (N + 7) / 8;
  for (long g = 0; g < groups; g++) {
    for (long b = 0; b < nb; b++) {
      uint8_t* dst = out + (g * nb + b) * B;
      for (long r = 0; r < 8; r++) {
        const long n = 8 * g + r;
        if (n >= N) {
          dst[2 * r] = dst[2 * r + 1] = 0;
          for (long c = 0; c < chunks; c++) std::memset(dst + 16 + 32 * c + 4 * r, 0, 4);
          continue;
        }
        const uint8_t* src = w + n * rb + bb * b;
        dst[2 * r] = src[0];
        dst[2 * r + 1] = src[1];
        for (long c = 0; c < chunks; c++) std::memcpy(dst + 16 + 32 * c + 4 * r, src + 2 + 4 * c, 4);
      }
    }
  }
}

}  // namespace lt
