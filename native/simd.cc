#include "simd.h"

#include <cstdlib>
#include <cstring>
#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#endif

namespace lt {

static int g_level = -2;

int simd_detect() {
#if LT_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return SIMD_AVX512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return SIMD_AVX2;
#endif
  return SIMD_GENERIC;
}

static int level_from_env(int best) {
  const char* e = std::getenv("LLAMA_TS_SIMD");
  if (!e || !*e) return best;
  int want = best;
  if (!std::strcmp(e, "generic")) want = SIMD_GENERIC;
  else if (!std::strcmp(e, "avx2")) want = SIMD_AVX2;
  else if (!std::strcmp(e, "avx512")) want = SIMD_AVX512;
  return want < best ? want : best;
}

int simd_level() {
  if (g_level == -2) g_level = level_from_env(simd_detect());
  return g_level;
}

int simd_set(int level) {
  int best = simd_detect();
  if (level < 0) g_level = level_from_env(best);
  else g_level = level < best ? level : best;
  return g_level;
}

bool simd_split_512() {
  static const int split = [] {
    const char* e = std::getenv("LLAMA_TS_SPLIT512");
    if (e && (!std::strcmp(e, "0") || !std::strcmp(e, "1"))) return e[0] == '1' ? 1 : 0;
#if LT_X86
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return 0;
    const bool amd = b == 0x68747541 && d == 0x69746e65 && c == 0x444d4163;  // "AuthenticAMD"
    if (!amd || !__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const unsigned family = ((a >> 8) & 0xf) == 0xf ? 0xf + ((a >> 20) & 0xff) : (a >> 8) & 0xf;
    return family == 0x19 ? 1 : 0;  // Zen3 (no AVX-512) and Zen4; Zen5 (0x1a) runs 512-bit ops at full width
#else
    return 0;
#endif
  }();
  return split != 0;
}

const char* simd_name(int level) {
  switch (level) {
    case SIMD_AVX512: return "avx512";
    case SIMD_AVX2: return "avx2";
    default: return "generic";
  }
}

}  // namespace lt
