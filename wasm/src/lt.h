// Shared declarations of the WebAssembly kernels (compiled with clang --target=wasm32 -msimd128, no libc).
// The op entries (ops.c) follow the op table, src/kernels/ops/table.ts; src/kernels/wasm.ts binds them.
#pragma once
#include <stdint.h>
#include <wasm_simd128.h>

#define LT_EXPORT(name) __attribute__((export_name(#name))) name
#define LT_MAX_THREADS 8

// f32x4 a·b + c: the relaxed-SIMD fused multiply-add in the relaxed build (LT_RELAXED), mul + add otherwise.
#ifdef LT_RELAXED
#define LT_FMA(a, b, c) ((v128_t)__builtin_wasm_relaxed_madd_f32x4((__f32x4)(a), (__f32x4)(b), (__f32x4)(c)))
#else
#define LT_FMA(a, b, c) wasm_f32x4_add(wasm_f32x4_mul((a), (b)), (c))
#endif

// ---- pool.c: work shared with the worker instances over the shared memory ----
typedef void (*lt_task)(void* ctx, int task, int tid);
/** Runs fn(ctx, t, tid) for t < n on the caller (tid 0) and the pool's workers; returns when all are done. */
void lt_parallel(lt_task fn, void* ctx, int n);
int lt_threads(void);

// ---- math.c ----
float lt_expf(float x);
double lt_exp(double x);
double lt_log(double x);
double lt_pow(double b, double e);
float lt_dot(const float* a, const float* b, int n);
void lt_axpy(float* y, float a, const float* x, int n);

// ---- gemm.c ----
/** C[M,N] (+)= op(A)·op(B); A(i,k) = transA ? A[k·lda + i] : A[i·lda + k]; B(k,j) = transB ? B[j·ldb + k] : B[k·ldb + j]. */
void lt_sgemm(int M, int N, int K, const float* A, int lda, int transA, const float* B, int ldb, int transB, float* C,
              int ldc, int accumulate);

static inline void lt_memset(void* p, int c, long n) { __builtin_memset(p, c, n); }
static inline void lt_memcpy(void* d, const void* s, long n) { __builtin_memcpy(d, s, n); }
