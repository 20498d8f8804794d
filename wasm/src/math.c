// Elementary functions without libm, and the two vector loops most kernels are made of.
#include "lt.h"

// exp(x) in float with ~2 ulp error (Cephes polynomial); 0 below -87, clamped at 88. Branch-free so loops vectorise.
float lt_expf(float x) {
  const float hi = 88.0f, lo = -87.0f;
  float xc = x > hi ? hi : (x < lo ? lo : x);
  float fn = __builtin_floorf(xc * 1.44269504088896341f + 0.5f);
  float r = xc - fn * 0.693359375f;
  r = r - fn * -2.12194440e-4f;
  float p = 1.9875691500E-4f;
  p = p * r + 1.3981999507E-3f;
  p = p * r + 8.3334519073E-3f;
  p = p * r + 4.1665795894E-2f;
  p = p * r + 1.6666665459E-1f;
  p = p * r + 5.0000001201E-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits = ((int32_t)fn + 127) << 23;
  float scale;
  __builtin_memcpy(&scale, &bits, 4);
  float y = p * scale;
  return x < lo ? 0.0f : y;
}

// exp(x) in double: x = n·ln2 + r, |r| ≤ ln2/2, Taylor series of e^r to r^14 (relative error < 1e-16).
double lt_exp(double x) {
  if (x != x) return x;
  if (x > 709.0) return __builtin_inf();
  if (x < -745.0) return 0.0;
  double n = __builtin_floor(x * 1.4426950408889634 + 0.5);
  double r = (x - n * 0.6931471803691238) - n * 1.9082149292705877e-10;
  double t = 1.0, s = 1.0;
  for (int i = 1; i <= 14; i++) {
    t *= r / i;
    s += t;
  }
  int64_t e = (int64_t)n;
  // scale by 2^e in two steps so that e down to -1074 stays representable
  int64_t e1 = e / 2, e2 = e - e1;
  uint64_t b1 = (uint64_t)(e1 + 1023) << 52, b2 = (uint64_t)(e2 + 1023) << 52;
  double f1, f2;
  __builtin_memcpy(&f1, &b1, 8);
  __builtin_memcpy(&f2, &b2, 8);
  return s * f1 * f2;
}

// log(x) in double: x = m·2^e with m in [√½, √2), log m = 2·atanh((m−1)/(m+1)) by its series.
double lt_log(double x) {
  if (x != x || x < 0) return __builtin_nan("");
  if (x == 0) return -__builtin_inf();
  if (x == __builtin_inf()) return x;
  uint64_t b;
  __builtin_memcpy(&b, &x, 8);
  int e = (int)((b >> 52) & 0x7ff);
  if (e == 0) {  // subnormal: scale up first
    x *= 18014398509481984.0;  // 2^54
    __builtin_memcpy(&b, &x, 8);
    e = (int)((b >> 52) & 0x7ff) - 54;
  }
  e -= 1023;
  b = (b & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL;
  double m;
  __builtin_memcpy(&m, &b, 8);
  if (m > 1.4142135623730951) {
    m *= 0.5;
    e += 1;
  }
  double s = (m - 1) / (m + 1), s2 = s * s, term = s, sum = 0;
  for (int k = 1; k <= 41; k += 2) {
    sum += term / k;
    term *= s2;
  }
  return 2 * sum + e * 0.6931471805599453;
}

double lt_pow(double b, double e) {
  if (e == (double)(int64_t)e && e >= 0 && e < 1e9) {
    double r = 1, p = b;
    for (int64_t k = (int64_t)e; k; k >>= 1) {
      if (k & 1) r *= p;
      p *= p;
    }
    return r;
  }
  return lt_exp(e * lt_log(b));
}

float lt_dot(const float* a, const float* b, int n) {
  v128_t s0 = wasm_f32x4_splat(0), s1 = s0;
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    s0 = LT_FMA(wasm_v128_load(a + i), wasm_v128_load(b + i), s0);
    s1 = LT_FMA(wasm_v128_load(a + i + 4), wasm_v128_load(b + i + 4), s1);
  }
  for (; i + 4 <= n; i += 4) s0 = LT_FMA(wasm_v128_load(a + i), wasm_v128_load(b + i), s0);
  s0 = wasm_f32x4_add(s0, s1);
  float s = (wasm_f32x4_extract_lane(s0, 0) + wasm_f32x4_extract_lane(s0, 1)) +
            (wasm_f32x4_extract_lane(s0, 2) + wasm_f32x4_extract_lane(s0, 3));
  for (; i < n; i++) s += a[i] * b[i];
  return s;
}

void lt_axpy(float* y, float a, const float* x, int n) {
  v128_t va = wasm_f32x4_splat(a);
  int i = 0;
  for (; i + 4 <= n; i += 4) wasm_v128_store(y + i, LT_FMA(va, wasm_v128_load(x + i), wasm_v128_load(y + i)));
  for (; i < n; i++) y[i] += a * x[i];
}

