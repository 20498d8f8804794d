import { availableParallelism, cpus } from 'node:os';

/**
 * Nominal float32 peak of this CPU for MFU: cores × clock × 32 FLOP/cycle (two 8-wide AVX2 FMA units).
 * Override with LLAMA_TS_PEAK_GFLOPS when the real peak is known.
 */
export function nominalPeakFlops(): number {
  const env = Number(process.env.LLAMA_TS_PEAK_GFLOPS);
  if (env > 0) return env * 1e9;
  const mhz = cpus()[0]?.speed || 2000;
  return availableParallelism() * mhz * 1e6 * 32;
}
