#include "simd.h"

#include <cstdlib>
#include <cstring>

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

const char* simd_name(int level) {
  switch (level) {
    case SIMD_AVX512: return "avx512";
    case SIMD_AVX2: return "avx2";
    default: return "generic";
  }
}

}  // namespace lt
