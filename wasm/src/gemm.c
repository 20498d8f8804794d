// Packed SGEMM with a 4×8 register-blocked f32x4 micro-kernel (8 accumulators, two B vectors, one broadcast A).
// Blocking: KC rows of the shared dimension × NC columns of B packed once per block, MC rows of A per inner block.
// Threads split C into column (or row) ranges, each packing its own panels; every element of C is computed by the
// same sequence of operations whatever the split, so results do not depend on the thread count.
#include "lt.h"

#define MR 4
#define NR 8
#define KC 256
#define MC 128
#define NC 512

static float pack_a[LT_MAX_THREADS][MC * KC] __attribute__((aligned(16)));
static float pack_b[LT_MAX_THREADS][KC * NC] __attribute__((aligned(16)));

// A block [mc, kc] at (i0, p0) → panels of MR rows, each stored k-major (MR values per k), zero-padded.
static void pack_A(float* dst, const float* A, int lda, int transA, int i0, int mc, int p0, int kc) {
  for (int i = 0; i < mc; i += MR) {
    int mr = mc - i < MR ? mc - i : MR;
    for (int k = 0; k < kc; k++) {
      for (int r = 0; r < MR; r++) {
        float v = 0;
        if (r < mr) v = transA ? A[(long)(p0 + k) * lda + i0 + i + r] : A[(long)(i0 + i + r) * lda + p0 + k];
        dst[r] = v;
      }
      dst += MR;
    }
  }
}

// B block [kc, nc] at (p0, j0) → panels of NR columns, each stored k-major (NR values per k), zero-padded.
static void pack_B(float* dst, const float* B, int ldb, int transB, int p0, int kc, int j0, int nc) {
  for (int j = 0; j < nc; j += NR) {
    int nr = nc - j < NR ? nc - j : NR;
    if (!transB && nr == NR) {
      for (int k = 0; k < kc; k++) {
        const float* src = B + (long)(p0 + k) * ldb + j0 + j;
        wasm_v128_store(dst, wasm_v128_load(src));
        wasm_v128_store(dst + 4, wasm_v128_load(src + 4));
        dst += NR;
      }
      continue;
    }
    for (int k = 0; k < kc; k++) {
      for (int c = 0; c < NR; c++) {
        float v = 0;
        if (c < nr) v = transB ? B[(long)(j0 + j + c) * ldb + p0 + k] : B[(long)(p0 + k) * ldb + j0 + j + c];
        dst[c] = v;
      }
      dst += NR;
    }
  }
}

// C tile [mr, nr] (+)= Ap[kc, MR]ᵀ·Bp[kc, NR]; overwrite when `first` (first K block without accumulation).
static void micro(int kc, const float* Ap, const float* Bp, float* C, int ldc, int mr, int nr, int first) {
  v128_t c00 = wasm_f32x4_splat(0), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  for (int k = 0; k < kc; k++) {
    v128_t b0 = wasm_v128_load(Bp), b1 = wasm_v128_load(Bp + 4);
    v128_t a0 = wasm_v128_load32_splat(Ap), a1 = wasm_v128_load32_splat(Ap + 1);
    c00 = LT_FMA(a0, b0, c00);
    c01 = LT_FMA(a0, b1, c01);
    c10 = LT_FMA(a1, b0, c10);
    c11 = LT_FMA(a1, b1, c11);
    v128_t a2 = wasm_v128_load32_splat(Ap + 2), a3 = wasm_v128_load32_splat(Ap + 3);
    c20 = LT_FMA(a2, b0, c20);
    c21 = LT_FMA(a2, b1, c21);
    c30 = LT_FMA(a3, b0, c30);
    c31 = LT_FMA(a3, b1, c31);
    Ap += MR;
    Bp += NR;
  }
  if (mr == MR && nr == NR) {
    float* r0 = C;
    float* r1 = C + ldc;
    float* r2 = C + 2 * ldc;
    float* r3 = C + 3 * ldc;
    if (!first) {
      c00 = wasm_f32x4_add(wasm_v128_load(r0), c00);
      c01 = wasm_f32x4_add(wasm_v128_load(r0 + 4), c01);
      c10 = wasm_f32x4_add(wasm_v128_load(r1), c10);
      c11 = wasm_f32x4_add(wasm_v128_load(r1 + 4), c11);
      c20 = wasm_f32x4_add(wasm_v128_load(r2), c20);
      c21 = wasm_f32x4_add(wasm_v128_load(r2 + 4), c21);
      c30 = wasm_f32x4_add(wasm_v128_load(r3), c30);
      c31 = wasm_f32x4_add(wasm_v128_load(r3 + 4), c31);
    }
    wasm_v128_store(r0, c00);
    wasm_v128_store(r0 + 4, c01);
    wasm_v128_store(r1, c10);
    wasm_v128_store(r1 + 4, c11);
    wasm_v128_store(r2, c20);
    wasm_v128_store(r2 + 4, c21);
    wasm_v128_store(r3, c30);
    wasm_v128_store(r3 + 4, c31);
    return;
  }
  float t[MR * NR] __attribute__((aligned(16)));
  wasm_v128_store(t + 0, c00);
  wasm_v128_store(t + 4, c01);
  wasm_v128_store(t + 8, c10);
  wasm_v128_store(t + 12, c11);
  wasm_v128_store(t + 16, c20);
  wasm_v128_store(t + 20, c21);
  wasm_v128_store(t + 24, c30);
  wasm_v128_store(t + 28, c31);
  for (int r = 0; r < mr; r++)
    for (int c = 0; c < nr; c++) C[(long)r * ldc + c] = first ? t[r * NR + c] : C[(long)r * ldc + c] + t[r * NR + c];
}

static void sgemm_serial(int M, int N, int K, const float* A, int lda, int transA, const float* B, int ldb, int transB,
                         float* C, int ldc, int accumulate, int tid) {
  if (K == 0) {
    if (!accumulate)
      for (int i = 0; i < M; i++) lt_memset(C + (long)i * ldc, 0, (long)N * 4);
    return;
  }
  float* pa = pack_a[tid];
  float* pb = pack_b[tid];
  for (int j0 = 0; j0 < N; j0 += NC) {
    int nc = N - j0 < NC ? N - j0 : NC;
    for (int p0 = 0; p0 < K; p0 += KC) {
      int kc = K - p0 < KC ? K - p0 : KC;
      int first = p0 == 0 && !accumulate;
      pack_B(pb, B, ldb, transB, p0, kc, j0, nc);
      for (int i0 = 0; i0 < M; i0 += MC) {
        int mc = M - i0 < MC ? M - i0 : MC;
        pack_A(pa, A, lda, transA, i0, mc, p0, kc);
        for (int j = 0; j < nc; j += NR) {
          int nr = nc - j < NR ? nc - j : NR;
          for (int i = 0; i < mc; i += MR) {
            int mr = mc - i < MR ? mc - i : MR;
            micro(kc, pa + i * kc, pb + j * kc, C + (long)(i0 + i) * ldc + j0 + j, ldc, mr, nr, first);
          }
        }
      }
    }
  }
}

struct gemm_job {
  int M, N, K, lda, transA, ldb, transB, ldc, accumulate;
  const float* A;
  const float* B;
  float* C;
  int by_cols, step;
};

static void gemm_task(void* ctx, int t, int tid) {
  struct gemm_job* g = ctx;
  int lo = t * g->step;
  if (g->by_cols) {
    int n = g->N - lo < g->step ? g->N - lo : g->step;
    const float* B = g->transB ? g->B + (long)lo * g->ldb : g->B + lo;
    sgemm_serial(g->M, n, g->K, g->A, g->lda, g->transA, B, g->ldb, g->transB, g->C + lo, g->ldc, g->accumulate, tid);
  } else {
    int m = g->M - lo < g->step ? g->M - lo : g->step;
    const float* A = g->transA ? g->A + lo : g->A + (long)lo * g->lda;
    sgemm_serial(m, g->N, g->K, A, g->lda, g->transA, g->B, g->ldb, g->transB, g->C + (long)lo * g->ldc, g->ldc,
                 g->accumulate, tid);
  }
}

void lt_sgemm(int M, int N, int K, const float* A, int lda, int transA, const float* B, int ldb, int transB, float* C,
              int ldc, int accumulate) {
  if (M == 0 || N == 0) return;
  int threads = lt_threads();
  double flops = 2.0 * M * N * K;
  if (threads <= 1 || flops < 2e6) {
    sgemm_serial(M, N, K, A, lda, transA, B, ldb, transB, C, ldc, accumulate, 0);
    return;
  }
  // split the longer side of C into 2 tasks per thread (aligned to the micro-tile) so that uneven tasks balance
  struct gemm_job g = {M, N, K, lda, transA, ldb, transB, ldc, accumulate, A, B, C, N >= M, 0};
  int len = g.by_cols ? N : M, unit = g.by_cols ? NR : MR;
  int tasks = 2 * threads;
  int step = (len + tasks - 1) / tasks;
  step = (step + unit - 1) / unit * unit;
  g.step = step;
  lt_parallel(gemm_task, &g, (len + step - 1) / step);
}
