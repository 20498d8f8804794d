/**
 * Batch-1 F32 decode with each layer as one native call (Backend.decodeLayer, what Decoder uses by default) against
 * the same decode through blockForward (`new Decoder(model, { fuseLayers: false })`), the two alternating in one
 * process on the same weights, greedy from BOS:
 *
 *   node dist/bench/decode-layer.js [--presets mini-15m,mini-42m] [--threads 1,2] [--tokens 200] [--rounds 6]
 *
 * Prints one JSON document naming the CPU: per row the two medians (tokens/s), each round's fused/plain ratio and
 * their median (a drift of the machine between rounds moves both sides of a round alike). Both give the same logits
 * bit for bit (test/native-model.test.ts); this measures only the time.
 */
import { cpus } from 'node:os';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { makeConfig } from '../src/model/config.js';
import { Llama } from '../src/model/llama.js';
import { createBackend } from '../src/kernels/index.js';
import { Decoder } from '../src/inference/generate.js';
import { argmaxOn } from '../src/inference/sampler.js';

const { values } = parseArgs({
  options: {
    presets: { type: 'string', default: 'mini-15m,mini-42m' }, threads: { type: 'string', default: '1,2' },
    tokens: { type: 'string', default: '200' }, rounds: { type: 'string', default: '6' },
  },
});
const N = Number(values.tokens), ROUNDS = Number(values.rounds);
const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const flags = (/^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '').split(' ').filter((f) => /^(avx2|fma|avx512f|avx512_vnni|avx512bw)$/.test(f));
const be = createBackend();
if (be.name !== 'native') throw new Error(`decodeLayer runs on the native backend; this one is ${be.name}`);
const pool = be as { setThreads?: (n: number) => number };

/** Decode tokens/s of one fresh cache: 20 warm-up steps, then N timed ones. */
function decode(model: Llama, fuse: boolean): number {
  const dec = new Decoder(model, { fuseLayers: fuse });
  const cache = dec.newCache(Math.min(model.config.maxSeqLen, N + 32));
  let logits = dec.prefill(cache, [1]);
  const step = () => (logits = dec.step([{ cache, tokens: [argmaxOn(be, logits)] }], 'last', true)[0]);
  for (let i = 0; i < 20; i++) step();
  const t0 = performance.now();
  for (let i = 0; i < N; i++) step();
  return N / ((performance.now() - t0) / 1000);
}

const results: Record<string, unknown>[] = [];
for (const name of String(values.presets).split(',')) {
  const model = new Llama(makeConfig(name), be);
  model.init(1);
  if (N + 32 > model.config.maxSeqLen) throw new Error(`--tokens ${N}: ${name}'s context is ${model.config.maxSeqLen}`);
  for (const threads of String(values.threads).split(',').map(Number)) {
    pool.setThreads?.(threads);
    const fused: number[] = [], plain: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      plain.push(decode(model, false));
      fused.push(decode(model, true));
    }
    const ratios = fused.map((f, i) => f / plain[i]);
    const row = {
      model: name, threads, tokens: N, fused_tokens_per_s: median(fused), plain_tokens_per_s: median(plain),
      pair_ratio_median: Number(median(ratios).toFixed(3)), pair_ratios: ratios.map((x) => Number(x.toFixed(3))),
    };
    process.stderr.write(`${JSON.stringify(row)}\n`);
    results.push(row);
  }
}
console.log(JSON.stringify({ bench: 'decode-layer', cpu: cpus()[0]?.model, cpus: cpus().length, cpu_flags: flags, node: process.version, results }, null, 1));
