#pragma once

#include <cstdint>

namespace lt {

// C[M,N] (= or +=) A·B with A[i][k] = A[i*rsa + k*csa], B[k][j] = B[k*rsb + j*csb], C row-major with leading
// dimension ldc. Packed panels + register-blocked micro-kernel (AVX-512 8x32, AVX2/FMA 6x16 or portable 4x16),
// parallel over blocks of C on the shared pool. Each element of C is summed in a fixed order: results do not
// depend on the thread count.
void sgemm(long M, long N, long K, const float* A, long rsa, long csa, const float* B, long rsb, long csb, float* C,
           long ldc, bool accumulate);

// The same product from bfloat16 operands (the bf16 convert path): A and B, or B as bf16_pack_b's k-pair panels
// (Bpairs, B's strides then unused), widened to float32 as the SGEMM packs them (no float32 copy of either). Every
// operand is packed, so the sums are the same whichever form B comes in.
void sgemm_bf16(long M, long N, long K, const uint16_t* A, long rsa, long csa, const uint16_t* B, long rsb, long csb,
                const uint32_t* Bpairs, float* C, long ldc, bool accumulate);

// The same product on the calling thread only (for small tiles inside a pool task, e.g. attention).
void sgemm_serial(long M, long N, long K, const float* A, long rsa, long csa, const float* B, long rsb, long csb, float* C,
                  long ldc, bool accumulate);

// out[j] = Σ_k x[k]·W[j·ldw + k] for j < N, on the calling thread: the batch-1 GEMV kernel over rows read in place
// (attention's scores against cached keys).
void dot_rows(long N, long K, const float* W, long ldw, const float* x, float* out);

// out[j][N[j]] = x[K]·W[j]ᵀ (W[j] row-major [N[j], K]) for n ≤ 4 products of one row x, in one hand-off to the pool:
// each product's rows in the tasks sgemm would give it, so bit for bit sgemm's (decode's q/k/v and w1/w3).
void gemv_multi(int n, const long* N, long K, const float* x, const float* const* W, float* const* out);
#if defined(__x86_64__) || defined(__i386__)
// out[r] = Σ_k x[k]·w[r][k] for the 8 rows w[0..7] (rows anywhere): dot_rows' 8-row block of that SIMD level, so a
// row's sum is bit for bit the one dot_rows gives it there (call each only where the CPU has its level).
void dot8_avx512(long K, const float* const* w, const float* x, float* out);
void dot8_avx2(long K, const float* const* w, const float* x, float* out);
#endif

}  // namespace lt
