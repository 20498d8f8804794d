/**
 * Top-k / top-p sampling cost per token at V = 32000, over the backend's float32 softmax (what generate, chat and
 * serve call) and the float64 JavaScript path, and the ordering of the candidates (the ids within 1e-4 of the most
 * likely, sampleToken's first cutoff) by orderByProbability's radix sort against the comparison sort it replaced
 * (Array.prototype.sort with a comparator), in the same run:
 *
 *   node dist/bench/sampler.js [--reps 300]
 *
 * Rows: 'flat' (every id within e^-7 of the top: a model at random init or early in training, or a high
 * temperature; the candidates are the whole vocabulary) and 'peaked' (logits N(0, 4²)). Prints one JSON document
 * naming the CPU; microseconds per sampled token, medians of 5 blocks of --reps draws.
 */
import { cpus } from 'node:os';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { sampleToken, orderByProbability, type SamplingOptions } from '../src/inference/sampler.js';
import { createBackend } from '../src/kernels/index.js';
import { Rng } from '../src/util/rng.js';

const { values } = parseArgs({ options: { reps: { type: 'string', default: '300' } } });
const REPS = Number(values.reps);
const be = createBackend();
const V = 32000;
const rng = new Rng(1);
const rows: Record<string, Float32Array> = {
  flat: Float32Array.from({ length: V }, (_, i) => Math.sin(i * 0.37) * 3 + (i % 97) * 0.01),
  peaked: Float32Array.from({ length: V }, () => rng.normal() * 4),
};
const options: Record<string, SamplingOptions> = {
  'top-p 0.95': { temperature: 1, topK: 0, topP: 0.95 },
  'top-k 40 top-p 0.95 T 0.8': { temperature: 0.8, topK: 40, topP: 0.95 },
};
const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** µs per draw: the median of 5 blocks of REPS draws. */
function time(f: () => void): number {
  for (let i = 0; i < 20; i++) f();
  const blocks: number[] = [];
  for (let b = 0; b < 5; b++) {
    const t0 = performance.now();
    for (let i = 0; i < REPS; i++) f();
    blocks.push(((performance.now() - t0) / REPS) * 1000);
  }
  return Math.round(median(blocks));
}

const results: Record<string, unknown>[] = [];
for (const [shape, logits] of Object.entries(rows)) {
  for (const [label, o] of Object.entries(options)) {
    for (const path of ['backend', 'js'] as const) {
      const b = path === 'backend' ? be : undefined;
      const now = time(() => sampleToken(logits, o, rng, b));
      // the candidates' ordering alone, radix against the comparison sort, on this row's probabilities
      const probs = path === 'backend' ? new Float32Array(V) : new Float64Array(V);
      let max = -Infinity;
      for (let i = 0; i < V; i++) max = Math.max(max, logits[i]);
      for (let i = 0; i < V; i++) probs[i] = Math.exp((logits[i] - max) / o.temperature);
      const cand: number[] = [];
      for (let i = 0; i < V; i++) if (probs[i] >= 1e-4) cand.push(i);
      const radix = time(() => orderByProbability(cand.slice(), probs));
      const comparison = time(() => cand.slice().sort((x, y) => probs[y] - probs[x] || x - y));
      // sample_before_us: this draw with the comparison sort in place of the radix order (what sampleToken cost before)
      results.push({ shape, options: label, path, candidates: cand.length, sample_us: now, sample_before_us: now - radix + comparison, order_radix_us: radix, order_comparison_us: comparison });
    }
  }
}
const flags = (/^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '').split(' ').filter((f) => /^(avx2|fma|avx512f)$/.test(f));
console.log(JSON.stringify({ bench: 'sampler', cpu: cpus()[0]?.model, cpus: cpus().length, cpu_flags: flags, node: process.version, vocab: V, reps: REPS, results }, null, 1));
