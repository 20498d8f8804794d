/**
 * Q4_0 decode kernels in CPU time (issue 16: batch-1 decode against llama.cpp's repacked Q4_0): the per-row kernel
 * over the blocks as stored (matmulQ4_0) against the 8-row kernel over the weights repacked at load (matmulQ4_0x8,
 * repackQ4_0x8), one row of x, on the native backend with one pool thread, on each x86 SIMD path the CPU has. Time is
 * process CPU time (process.cpuUsage), so other processes' load on a shared machine distorts it little; the two
 * kernels alternate round by round and each reports its median round. Prints one JSON object: per shape and path
 * the G weights/s of each and the ratio new/old.
 *
 *   node dist/bench/quant-kernels.js [--rounds 7] [--ms 150] [--m 1]
 */
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { createNativeBackend } from '../src/kernels/native.js';
import { repackQ4_0x8, rowBytes } from '../src/kernels/ops/quant.js';
import { Rng } from '../src/util/rng.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '7' }, ms: { type: 'string', default: '150' }, m: { type: 'string', default: '1' } } });
const rounds = Number(values.rounds), budgetMs = Number(values.ms), M = Number(values.m);
const be = createNativeBackend();
be.addon.setThreads(1);
const cpuFlags = (/^flags\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1].split(' ') ?? []).filter((f) => /^(avx|fma|f16c)/.test(f));

/** Random Q4_0 blocks: random nibbles, each block's scale a small valid f16 (finite products). */
function randomQ4_0(rng: Rng, N: number, K: number): Uint8Array {
  const w = new Uint8Array(N * rowBytes('Q4_0', K));
  for (let i = 0; i < w.length; i++) w[i] = Math.floor(rng.next() * 256);
  for (let o = 0; o < w.length; o += 18) {
    w[o] = Math.floor(rng.next() * 256);
    w[o + 1] = 0x20; // exponent 8: about 2^-7
  }
  return w;
}

const cpuNs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
};

/** CPU seconds per call of fn, over as many calls as fit in about budgetMs. */
function timeCalls(fn: () => void, calls: number): number {
  const t0 = cpuNs();
  for (let i = 0; i < calls; i++) fn();
  return (cpuNs() - t0) / 1e9 / calls;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1];

const shapes: [number, number][] = [[32000, 512], [1376, 512], [512, 1376], [768, 3072]]; // [N rows, K columns]
const levels = (['avx512', 'avx2', 'generic'] as const).slice(['avx512', 'avx2', 'generic'].indexOf(be.addon.simdDetected()));
const rng = new Rng(1);
const results: Record<string, unknown>[] = [];
for (const [N, K] of shapes) {
  const w = randomQ4_0(rng, N, K), p = repackQ4_0x8(w, N, K);
  const x = new Float32Array(M * K).map(() => rng.next() * 2 - 1), out = new Float32Array(M * N);
  for (const level of levels) {
    be.addon.setSimd(level);
    const old = (): void => be.matmulQ4_0(out, x, w, M, K, N);
    const neu = (): void => be.matmulQ4_0x8(out, x, p, M, K, N);
    // calls per round: about budgetMs of the old kernel (warm-up call first)
    old();
    neu();
    const calls = Math.max(3, Math.round(budgetMs / 1e3 / timeCalls(old, 3)));
    const tOld: number[] = [], tNew: number[] = [];
    for (let r = 0; r < rounds; r++) {
      tOld.push(timeCalls(old, calls));
      tNew.push(timeCalls(neu, calls));
    }
    const gOld = (M * N * K) / median(tOld) / 1e9, gNew = (M * N * K) / median(tNew) / 1e9;
    results.push({ shape: `${N}x${K}`, simd: level, m: M, old_gweights_s: +gOld.toFixed(2), new_gweights_s: +gNew.toFixed(2), ratio: +(gNew / gOld).toFixed(2), calls_per_round: calls });
  }
}
be.addon.setSimd('default');
console.log(JSON.stringify({
  bench: 'quant-kernels', kernel_old: 'matmulQ4_0 (per row, blocks as stored)', kernel_new: 'matmulQ4_0x8 (8 rows, repacked)',
  threads: be.addon.threads(), rounds, cpu: cpus()[0]?.model, cpus: cpus().length, cpu_flags: cpuFlags, loadavg: loadavg().map((v) => +v.toFixed(2)),
  node: process.version, results,
}, null, 1));
