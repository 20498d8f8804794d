// bfloat16 GEMM with float32 accumulation (the matmuls of --dtype bf16). Reference: src/kernels/ops/bf16.ts.
#pragma once
#include <cstdint>

namespace lt {

// bf16 paths: vdpbf16ps micro-kernel (AVX512_BF16), or each operand converted to float32 and the SGEMM.
enum Bf16Path { BF16_CONVERT = 0, BF16_AVX512 = 1 };

int bf16_detect();  // best path this CPU supports (AVX512_BF16 also needs the AVX-512 SIMD level)
int bf16_path();    // path in use: the detected one, lowered by LLAMA_TS_BF16=convert, the API, or a lower SIMD level
// Sets the path (clamped to what the CPU supports); -1 restores the default. Returns the path now in use.
int bf16_set(int path);
const char* bf16_name(int path);
// true when the CPU reports AMX-BF16 (there is no AMX kernel: such a CPU uses the AVX512_BF16 path)
bool amx_bf16_detected();

// float32 -> bfloat16 bits, round to nearest even (NaN stays NaN, quiet), as PyTorch; and back (exact).
void f32_to_bf16(const float* x, uint16_t* out, long n);
void bf16_to_f32(const uint16_t* x, float* out, long n);
// f32_to_bf16 on the calling thread only (inside a task of another kernel)
void f32_to_bf16_serial(const float* x, uint16_t* out, long n);

// C[M,N] (= or +=) A·B in float32 with A[i][k] = A[i*rsa + k*csa], B[k][j] = B[k*rsb + j*csb] bfloat16, C row-major
// with leading dimension ldc. Each product of two bfloat16 values is exact in float32; sums are float32.
void bgemm(long M, long N, long K, const uint16_t* A, long rsa, long csa, const uint16_t* B, long rsb, long csb, float* C,
           long ldc, bool accumulate);

// B packed once for several products (the output head's weight, used by every block of logits): K×N B
// (B[k][j] = B[k*rsb + j*csb]) as panels of 32 columns, panel p at p*ceil(K/2)*32, in it column c's k-pair q at
// q*32 + c = B[2q][j] | B[2q+1][j] << 16 (zero past K and N): bf16_packed_size(K, N) uint32. The same layout on
// every CPU; bgemm_packed on the AVX512_BF16 path reads it in place, on the convert path the SGEMM packs its float32
// panels from it (sgemm_bf16), so that its results are bgemm's, bit for bit, on every path.
long bf16_packed_size(long K, long N);
void bf16_pack_b(const uint16_t* B, long rsb, long csb, long K, long N, uint32_t* out);
#if defined(__x86_64__) && defined(__GNUC__)
// The k-pairs of up to 16 rows stored along k (row r at src + r*rs, pair q = src[r*rs + 2q], src[r*rs + 2q + 1]),
// transposed: dst[q*W + r] for q < kfull, `lanes` lanes from r = 0, rows m <= r < lanes zero (AVX512_BF16 CPUs only;
// the packing of bgemm's operands, used by the bf16 attention's tiles too).
void bf16_transpose_pairs(const uint16_t* src, long rs, long m, long kfull, uint32_t* dst, long W, int lanes);
#endif
void bgemm_packed(long M, long N, long K, const uint16_t* A, long rsa, long csa, const uint32_t* Bp, long rsb, long csb,
                  float* C, long ldc, bool accumulate);

}  // namespace lt
