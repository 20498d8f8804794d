// Products against weights in ggml's quantized block layouts (Q8_0, Q4_0, Q4_K, Q6_K), activations quantized to
// int8 per block of 32. Reference and layouts: src/kernels/ops/quant.ts; entries: native/ops/quant.cc; tests:
// test/quant.test.ts.
#pragma once
#include <cstdint>

namespace lt {

enum QuantKind { QK_Q8_0 = 0, QK_Q4_0 = 1, QK_Q4_K = 2, QK_Q6_K = 3, QK_BF16 = 4 };

// From this many rows of x on, the product is computed in float32 on the dequantized weights (QUANT_GEMM_ROWS in
// src/kernels/ops/quant.ts).
const long QUANT_GEMM_ROWS = 16;

// out[M,N] (+)= x[M,K]·wᵀ, w [N,K] in `kind`'s blocks (K a multiple of the block size). Runs on the pool with the
// SIMD path in use (AVX-512 VNNI, AVX2 or portable): int8 activations below QUANT_GEMM_ROWS rows (BF16: float
// activations, bf16 weights widened in registers), else SGEMM on dequantized weight rows.
void matmul_quant(QuantKind kind, long M, long K, long N, const float* x, const uint8_t* w, float* out, bool accumulate);

// out[M,N] (+)= x[M,K]·wᵀ for any M, w [N,K] in Q4_0 repacked 8 rows at a time (the layout: repackX8 in
// src/kernels/ops/quant.ts; kernel native/quant-x8.cc): activations quantized as matmul_quant's below
// QUANT_GEMM_ROWS rows, and so for every row count (prefill too).
void matmul_q4_0x8(long M, long K, long N, const float* x, const uint8_t* w, float* out, bool accumulate);
// the same for Q8_0 repacked by repackQ8_0x8 (272 bytes per 8 rows and 32 columns)
void matmul_q8_0x8(long M, long K, long N, const float* x, const uint8_t* w, float* out, bool accumulate);
// w [N, K] in Q4_0 (q8 false) or Q8_0 blocks repacked into the 8-row layout of matmul_q4_0x8 / matmul_q8_0x8
void repack_x8(bool q8, long N, long K, const uint8_t* w, uint8_t* out);

// shared by the kernels of quant.cc and quant-x8.cc: an IEEE half at p (little-endian) as float; one row of
// activations → int8 per block of 32 (q[K], block scales d[K/32], block sums s[K/32]).
float half_to_float(const uint8_t* p);
void quantize_row(const float* x, long K, int8_t* q, float* d, int32_t* s);
// The M rows of x [M,K] quantized by quantize_row (rows in parallel when there is enough work) into buffers of the
// calling thread, valid until its next call: int8 values [M,K], block scales and block sums [M,K/32].
struct QuantizedRows {
  const int8_t* q;
  const float* d;
  const int32_t* s;
};
QuantizedRows quantize_rows(const float* x, long M, long K);

}  // namespace lt
