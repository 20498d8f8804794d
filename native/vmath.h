// Branch-free float math that GCC auto-vectorises (no libm call in the loop).
#pragma once
#include <cstdint>

namespace lt {

// exp(x) with ~2 ulp error (Cephes polynomial); 0 for x < -87 (and for -inf), finite up to x = 88.
static inline float vexp(float x) {
  const float hi = 88.0f, lo = -87.0f;
  float xc = x > hi ? hi : (x < lo ? lo : x);
  // round to nearest with the 1.5·2^23 trick (vectorises without SSE4.1)
  float fn = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = xc - fn * 0.693359375f;
  r = r - fn * -2.12194440e-4f;
  float p = 1.9875691500E-4f;
  p = p * r + 1.3981999507E-3f;
  p = p * r + 8.3334519073E-3f;
  p = p * r + 4.1665795894E-2f;
  p = p * r + 1.6666665459E-1f;
  p = p * r + 5.0000001201E-1f;
  p = p * r * r + r + 1.0f;
  int32_t n = (int32_t)fn;
  int32_t bits = (n + 127) << 23;
  float scale;
  __builtin_memcpy(&scale, &bits, 4);
  float y = p * scale;
  return x < lo ? 0.0f : y;
}

}  // namespace lt
