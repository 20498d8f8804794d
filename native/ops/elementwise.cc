// Native ops add, scale, sumSquares, argmax, and the bandwidth probes copy and readSum.
// Declared in src/kernels/ops/table.ts; reference src/kernels/ops/elementwise.ts; kernel native/kernels.cc.
// Tests: test/native-kernels.test.ts ('swiglu, add, scale, sumSquares', 'results do not depend on the thread count
// ...', 'shape mismatches ...').
#include <cstring>
#include <vector>

#include "../kernels.h"
#include "../op.h"
#include "../pool.h"
#include "../simd.h"

using namespace lt;

LT_OP(add) {
  float *out = c.f("out"), *a = c.f("a"), *b = c.f("b");
  if (!c.failed()) add(out, a, b, c.i("n"));
}

LT_OP(scale) {
  float* x = c.f("x");
  double s = c.num("s");
  if (!c.failed()) scale(x, s, c.i("n"));
}

LT_OP_NUM(sumSquares) {
  float* x = c.f("x");
  return c.failed() ? 0 : sum_squares(x, c.i("n"));
}

// dst = src, the pool's threads each copying a contiguous share (native-only op: the memory-bandwidth probe of
// src/inference/bench.ts, measureCopyBandwidth; test: test/quant.test.ts 'copy').
LT_OP(copy) {
  float *dst = c.f("dst"), *src = c.f("src");
  long n = c.i("n");
  if (c.failed()) return;
  long parts = pool_threads(), per = (n + parts - 1) / (parts > 0 ? parts : 1);
  parallel_for(parts, [&](long t) {
    long s = t * per, e = s + per < n ? s + per : n;
    if (s < e) std::memcpy(dst + s, src + s, (e - s) * sizeof(float));
  });
}

// Σ x[i] of one contiguous share: four 16-lane float32 accumulators (the loop the compiler vectorises for each clone;
// the order is fixed, but this is a probe, not a reduction anyone relies on).
LT_CLONES static double read_sum_range(const float* x, long n) {
  typedef float v16f __attribute__((vector_size(64)));
  v16f a = {}, b = {}, d = {}, e = {};
  long i = 0;
  for (; i + 64 <= n; i += 64) {
    v16f p, q, r, s;
    std::memcpy(&p, x + i, 64), std::memcpy(&q, x + i + 16, 64), std::memcpy(&r, x + i + 32, 64), std::memcpy(&s, x + i + 48, 64);
    a += p, b += q, d += r, e += s;
  }
  v16f t = (a + b) + (d + e);
  double sum = 0;
  for (int l = 0; l < 16; l++) sum += t[l];
  for (; i < n; i++) sum += x[i];
  return sum;
}

// Σ x, the pool's threads each reading a contiguous share once (native-only op: the read-bandwidth probe of
// src/inference/bench.ts, measureReadBandwidth; test: test/quant.test.ts 'readSum').
LT_OP_NUM(readSum) {
  float* x = c.f("x");
  long n = c.i("n");
  if (c.failed()) return 0;
  long parts = pool_threads() > 0 ? pool_threads() : 1, per = (n + parts - 1) / parts;
  per = (per + 15) / 16 * 16;  // shares start on 64-byte steps of the buffer
  std::vector<double> part(parts, 0.0);
  parallel_for(parts, [&](long t) {
    long s = t * per, e = s + per < n ? s + per : n;
    if (s < e) part[t] = read_sum_range(x + s, e - s);
  });
  double total = 0;
  for (double v : part) total += v;
  return total;
}

// The index of the largest x[i], i < n, as src/inference/sampler.ts's argmax decides it: the first of equal maxima
// (+0 and -0 equal), a NaN past x[0] never taken (comparisons with NaN are false), a NaN x[0] kept. One pass finds
// the maximum 16 lanes at a time (a lane takes a value only when it is greater), a second the first index holding it.
LT_CLONES static long argmax_range(const float* x, long n) {
  typedef float v16f __attribute__((vector_size(64)));
  typedef int v16i __attribute__((vector_size(64)));
  if (n <= 0) return 0;
  float best = x[0];
  if (best != best) return 0;
  long i = 1;
  if (n >= 17) {
    v16f b;
    for (int l = 0; l < 16; l++) b[l] = best;
    for (; i + 16 <= n; i += 16) {
      v16f v;
      std::memcpy(&v, x + i, 64);
      v16i gt = v > b;
      b = gt ? v : b;
    }
    for (int l = 0; l < 16; l++)
      if (b[l] > best) best = b[l];
  }
  for (; i < n; i++)
    if (x[i] > best) best = x[i];
  for (long j = 0; j < n; j++)
    if (x[j] == best) return j;
  return 0;
}

LT_OP_NUM(argmax) {
  float* x = c.f("x");
  long n = c.i("n");
  return c.failed() ? 0 : (double)argmax_range(x, n);
}
