// Runtime SIMD level: chosen once from the CPU (__builtin_cpu_supports), overridable by LLAMA_TS_SIMD or the API
// (for tests of every path). AVX2/AVX-512 code is compiled with target attributes, so the addon itself
// needs only the baseline ISA and still loads on older CPUs.
#pragma once

namespace lt {

enum SimdLevel { SIMD_GENERIC = 0, SIMD_AVX2 = 1, SIMD_AVX512 = 2 };

int simd_detect();   // best level this CPU supports
int simd_level();    // level in use
// Sets the level (clamped to what the CPU supports); returns the level now in use. -1 restores the default.
int simd_set(int level);
const char* simd_name(int level);
// Whether this CPU runs 512-bit vector operations as two 256-bit halves (AMD family 19h: Zen4): kernels whose only
// gain from 512 bits is width then take their 256-bit form. LLAMA_TS_SPLIT512=0/1 overrides (tests, measurements).
bool simd_split_512();

}  // namespace lt

#if defined(__x86_64__) && defined(__GNUC__)
#define LT_X86 1
#define LT_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define LT_TARGET_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,avx2,fma")))
// Auto-vectorised elementwise kernels get one clone per level, picked by the loader (ifunc). (GCC 12 does not
// vectorise some loops in "arch=" clones, so the clones name ISA extensions.)
#define LT_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define LT_X86 0
#define LT_TARGET_AVX2
#define LT_TARGET_AVX512
#define LT_CLONES
#endif
