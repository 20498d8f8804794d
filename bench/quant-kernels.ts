/**
 * Q4_0 and Q8_0 decode kernels in CPU time (issue 16: batch-1 decode against llama.cpp's repacked Q4_0): the per-row
 * kernel over the blocks as stored (matmulQ4_0, matmulQ8_0) against the 8-row kernel over the weights repacked at load
 * (matmulQ4_0x8, matmulQ8_0x8; repackX8), one row of x (--m for more), on the native backend with one pool thread, on each x86 SIMD path the CPU has. Time is
 * process CPU time (process.cpuUsage), so other processes' load on a shared machine distorts it little; the two
 * kernels alternate round by round and each reports its median round. Prints one JSON object: per shape and path
 * the G weights/s of each and the ratio new/old.
 *
 *   node dist/bench/quant-kernels.js [--rounds 7] [--ms 150] [--m 1] [--types q4_0,q8_0] [--kquants on|off]
 * With --kquants on (default) it also times Q6_K and Q4_K: the AVX2 path's kernel against the AVX-512 one.
 */
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { createNativeBackend } from '../src/kernels/native.js';
import { repackX8, rowBytes, quantize, type X8Type } from '../src/kernels/ops/quant.js';
import { Rng } from '../src/util/rng.js';

const { values } = parseArgs({
  options: { rounds: { type: 'string', default: '7' }, ms: { type: 'string', default: '150' }, m: { type: 'string', default: '1' }, types: { type: 'string', default: 'q4_0,q8_0' }, kquants: { type: 'string', default: 'on' } },
});
const rounds = Number(values.rounds), budgetMs = Number(values.ms), M = Number(values.m);
const types = String(values.types).split(',').map((t) => t.toUpperCase() as X8Type);
const be = createNativeBackend();
be.addon.setThreads(1);
const cpuFlags = (/^flags\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1].split(' ') ?? []).filter((f) => /^(avx|fma|f16c)/.test(f));

/** Random blocks: random quants, each block's scale a small valid f16 (finite products). */
function randomBlocks(type: X8Type, rng: Rng, N: number, K: number): Uint8Array {
  const w = new Uint8Array(N * rowBytes(type, K)), bb = type === 'Q4_0' ? 18 : 34;
  for (let i = 0; i < w.length; i++) w[i] = Math.floor(rng.next() * 256);
  for (let o = 0; o < w.length; o += bb) {
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
for (const type of types) for (const [N, K] of shapes) {
  const w = randomBlocks(type, rng, N, K), p = repackX8(type, w, N, K);
  const x = new Float32Array(M * K).map(() => rng.next() * 2 - 1), out = new Float32Array(M * N);
  for (const level of levels) {
    be.addon.setSimd(level);
    const old = type === 'Q4_0' ? (): void => be.matmulQ4_0(out, x, w, M, K, N) : (): void => be.matmulQ8_0(out, x, w, M, K, N);
    const neu = type === 'Q4_0' ? (): void => be.matmulQ4_0x8(out, x, p, M, K, N) : (): void => be.matmulQ8_0x8(out, x, p, M, K, N);
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
    results.push({ type, shape: `${N}x${K}`, simd: level, m: M, old_gweights_s: +gOld.toFixed(2), new_gweights_s: +gNew.toFixed(2), ratio: +(gNew / gOld).toFixed(2), calls_per_round: calls });
  }
}
// K-quants (Q6_K: the head of every Q4_0 file; Q4_K): the AVX2 path's kernel (4 rows a pass in 256-bit vectors)
// against the AVX-512 VNNI/BW one (64 values per vpdpbusd, 4 rows a pass), on the same weights; only where the CPU
// has both paths
const kquants: Record<string, unknown>[] = [];
if (values.kquants !== 'off' && levels[0] === 'avx512') {
  const kshapes: [number, number][] = [[32000, 512], [32000, 768], [4096, 4096]];
  for (const type of ['Q6_K', 'Q4_K'] as const) for (const [N, K] of kshapes) {
    const w = quantize(type, Float32Array.from({ length: N * K }, () => rng.next() * 2 - 1));
    const x = new Float32Array(M * K).map(() => rng.next() * 2 - 1), out = new Float32Array(M * N);
    const run = (): void => (type === 'Q6_K' ? be.matmulQ6K(out, x, w, M, K, N) : be.matmulQ4K(out, x, w, M, K, N));
    be.addon.setSimd('avx2');
    run();
    const calls = Math.max(3, Math.round(budgetMs / 1e3 / timeCalls(run, 3)));
    const tRow: number[] = [], t512: number[] = [];
    for (let r = 0; r < rounds; r++) {
      be.addon.setSimd('avx2');
      tRow.push(timeCalls(run, calls));
      be.addon.setSimd('avx512');
      t512.push(timeCalls(run, calls));
    }
    const gRow = (M * N * K) / median(tRow) / 1e9, g512 = (M * N * K) / median(t512) / 1e9;
    kquants.push({
      type, shape: `${N}x${K}`, m: M, weight_bytes: w.length, avx2_gweights_s: +gRow.toFixed(2), avx512_gweights_s: +g512.toFixed(2),
      avx512_gbytes_s: +((w.length / median(t512)) / 1e9).toFixed(1), ratio: +(g512 / gRow).toFixed(2), calls_per_round: calls,
    });
  }
}
be.addon.setSimd('default');
console.log(JSON.stringify({
  bench: 'quant-kernels', kernel_old: 'matmulQ4_0 / matmulQ8_0 (per row, blocks as stored)', kernel_new: 'matmulQ4_0x8 / matmulQ8_0x8 (8 rows, repacked)',
  kquants_note: 'Q6_K / Q4_K: the AVX2 path (4 rows a pass, 256-bit) against the AVX-512 VNNI/BW 4-row kernel on the same weights (CPU time, rounds alternating)', kquants,
  threads: be.addon.threads(), rounds, cpu: cpus()[0]?.model, cpus: cpus().length, cpu_flags: cpuFlags, loadavg: loadavg().map((v) => +v.toFixed(2)),
  node: process.version, results,
}, null, 1));
