/**
 * The float32 peak that MFU is counted against, one figure for `train`, the demo and `bench train`:
 * - LLAMA_TS_PEAK_GFLOPS when set;
 * - with the native backend, the best GFLOP/s of its SGEMM on a compute-bound shape (x·Wᵀ, 1024³, best of 10, all
 *   pool threads), per CPU model, SIMD path and thread count, cached in ~/.cache/llama-ts/peak.json
 *   (LLAMA_TS_CACHE_DIR to move it): measured on the first use, and again by every `bench train`, the cache keeping
 *   the best figure seen (a measurement on a busy machine only lowers it once). It is the fastest our own kernels
 *   go on this machine, so a model's MFU stays below 100%;
 * - otherwise (ref backend) the nominal figure: cores × clock × 2 FMA pipes × 2 FLOP × the SIMD lanes the CPU
 *   reports (16 with AVX-512, 8 with AVX2, 4 else), an upper bound.
 * Runs with --dtype bf16 count against the bf16 peak: the native matmulBf16 on the same shape (on the bf16 path in
 * use: AVX512_BF16 or converted to float32), cached under its own key; nominally twice the float32 figure on a CPU
 * with AVX512_BF16.
 * The old nominal count assumed AVX2 everywhere (cores × clock × 32), which put MFU above 100% on AVX-512 machines.
 */
import { availableParallelism, cpus, homedir } from 'node:os';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Backend } from './backend.js';
import { loadNative } from './native.js';
import { writeFileAtomic } from '../util/fsutil.js';
import { Rng } from '../util/rng.js';

export interface Peak {
  flops: number;
  source: string;
}

export const SGEMM_PEAK_SOURCE = 'native sgemm x·Wᵀ 1024×1024×1024, best of 10, all pool threads';
export const BF16_PEAK_SOURCE = 'native matmulBf16 x·Wᵀ 1024×1024×1024, best of 10, all pool threads';

/** Precision of the peak: float32 (SGEMM) or bfloat16 inputs (matmulBf16). */
export type PeakDType = 'f32' | 'bf16';

/** GFLOP/s of the native SGEMM on x·Wᵀ 1024³, best of `reps`, on the current pool; null without the addon. */
export function measureSgemmPeak(reps = 10, dtype: PeakDType = 'f32'): number | null {
  const { addon } = loadNative();
  if (!addon) return null;
  const n = 1024;
  const rng = new Rng(1);
  const a = Float32Array.from({ length: n * n }, () => rng.next() - 0.5);
  const b = Float32Array.from({ length: n * n }, () => rng.next() - 0.5);
  const c = new Float32Array(n * n);
  const a16 = new Uint16Array(dtype === 'bf16' ? n * n : 0), b16 = new Uint16Array(a16.length);
  if (dtype === 'bf16') {
    addon.toBf16(a16, a, n * n);
    addon.toBf16(b16, b, n * n);
  }
  const run = () => (dtype === 'bf16' ? addon.matmulBf16(c, a16, b16, n, n, n, false) : addon.matmul(c, a, b, n, n, n, false));
  run();
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    run();
    best = Math.min(best, performance.now() - t);
  }
  return (2 * n * n * n) / (best * 1e6);
}

function cpuFlags(): string[] {
  try {
    return readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)?.[1].trim().split(/\s+/) ?? [];
  } catch {
    return [];
  }
}

/** cores × clock × 2 pipes × 2 FLOP (FMA) × SIMD lanes: an upper bound for float32 on this CPU. */
export function nominalPeakFlops(): number {
  const flags = cpuFlags();
  const lanes = flags.includes('avx512f') ? 16 : flags.includes('avx2') && flags.includes('fma') ? 8 : 4;
  const mhz = cpus()[0]?.speed || 2000;
  return availableParallelism() * mhz * 1e6 * 2 * 2 * lanes;
}

function cacheFile(): string {
  return join(process.env.LLAMA_TS_CACHE_DIR ?? join(homedir(), '.cache', 'llama-ts'), 'peak.json');
}

/**
 * The MFU denominator for `backend` (see the header). Measures on the first call on a machine, and whenever
 * `remeasure` is set (benchmarks); the cache keeps the best figure.
 */
export function peakFlops(backend: Backend, remeasure = false, dtype: PeakDType = 'f32'): Peak {
  const env = Number(process.env.LLAMA_TS_PEAK_GFLOPS);
  if (env > 0) return { flops: env * 1e9, source: 'LLAMA_TS_PEAK_GFLOPS' };
  const nb = backend as Backend & { threads?: () => number; simd?: () => string; addon?: { bf16Path(): string } };
  if (backend.name !== 'native' || !nb.threads || !nb.simd) {
    const twice = dtype === 'bf16' && cpuFlags().includes('avx512_bf16');
    return { flops: nominalPeakFlops() * (twice ? 2 : 1), source: `nominal: cores × clock × 2 FMA pipes × SIMD lanes${twice ? ' × 2 (AVX512_BF16 pairs)' : ''}` };
  }
  const key = `${cpus()[0]?.model ?? 'cpu'} | ${nb.simd()} | ${nb.threads()} threads${dtype === 'bf16' ? ` | bf16 ${nb.addon?.bf16Path() ?? ''}` : ''}`;
  const file = cacheFile();
  let cache: Record<string, number> = {};
  try {
    if (existsSync(file)) cache = JSON.parse(readFileSync(file, 'utf8')) as Record<string, number>;
  } catch {
    cache = {}; // a corrupt cache is measured again
  }
  const cached = typeof cache[key] === 'number' && cache[key] > 0 ? cache[key] : null;
  let gflops = cached;
  if (gflops === null || remeasure) {
    gflops = Math.max(cached ?? 0, measureSgemmPeak(10, dtype) ?? nominalPeakFlops() / 1e9);
    try {
      mkdirSync(join(file, '..'), { recursive: true });
      writeFileAtomic(file, [JSON.stringify({ ...cache, [key]: gflops }, null, 1)]);
    } catch {
      // an unwritable cache only means measuring again next time
    }
  }
  return { flops: gflops * 1e9, source: `${dtype === 'bf16' ? BF16_PEAK_SOURCE : SGEMM_PEAK_SOURCE} (${key}; cached in ${file})` };
}
