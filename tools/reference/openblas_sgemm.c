/* OpenBLAS SGEMM timings for the benchmark comparison only (never a dependency of llama-ts).
 * Build: cc -O2 openblas_sgemm.c -o openblas_sgemm -lopenblas   (Debian: apt-get install libopenblas-dev)
 * Usage: openblas_sgemm M K N [M K N ...]   prints one JSON line per shape with GFLOP/s of the three layouts the
 * model uses: x·Wᵀ (fwd), dy·W (dx), dyᵀ·x (dW). Threads: OPENBLAS_NUM_THREADS.
 * Timing: median of REPS calls (default 5) after one warm-up call. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static float* rnd(long n) {
  float* a = malloc(sizeof(float) * n);
  for (long i = 0; i < n; i++) a[i] = (float)rand() / RAND_MAX - 0.5f;
  return a;
}

static int cmp(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

static double median(double* t, int n) {
  qsort(t, n, sizeof(double), cmp);
  return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

/* median of REPS calls (env, default 5) after one warm-up call */
#define BEST(expr, out)                                                  \
  do {                                                                   \
    expr;                                                                \
    double ts[101];                                                      \
    for (int r = 0; r < reps; r++) {                                     \
      double t = now();                                                  \
      expr;                                                              \
      ts[r] = now() - t;                                                 \
    }                                                                    \
    out = median(ts, reps);                                              \
  } while (0)

int main(int argc, char** argv) {
  int reps = getenv("REPS") ? atoi(getenv("REPS")) : 5;
  if (reps < 1) reps = 1;
  if (reps > 101) reps = 101;
  for (int a = 1; a + 2 < argc; a += 3) {
    long M = atol(argv[a]), K = atol(argv[a + 1]), N = atol(argv[a + 2]);
    float *x = rnd(M * K), *w = rnd(N * K), *dy = rnd(M * N), *out = rnd(M * N), *dx = rnd(M * K), *dw = rnd(N * K);
    double tf, tdx, tdw;
    BEST(cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.f, x, K, w, K, 0.f, out, N), tf);
    BEST(cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, K, N, 1.f, dy, N, w, K, 0.f, dx, K), tdx);
    BEST(cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, K, M, 1.f, dy, N, x, K, 1.f, dw, K), tdw);
    double f = 2.0 * M * N * K / 1e9;
    printf("{\"M\":%ld,\"K\":%ld,\"N\":%ld,\"fwd_gflops\":%.1f,\"dx_gflops\":%.1f,\"dw_gflops\":%.1f}\n", M, K, N, f / tf,
           f / tdx, f / tdw);
    free(x); free(w); free(dy); free(out); free(dx); free(dw);
  }
  return 0;
}
