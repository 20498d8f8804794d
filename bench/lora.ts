/**
 * LoRA training step against its peer, a full fine-tuning step of the same model on the same batch: forward, loss,
 * backward (LoRA: base weights frozen, so no weight gradients of the matrices, embeddings or head; the adapter's
 * gradients instead), AdamW on the trained tensors. The two are interleaved (A B A B …). Prints one JSON object.
 *
 *   node dist/bench/lora.js [--preset mini-15m] [--rank 16] [--targets wq,wv] [--batch 8] [--seq 256] [--reps 5] [--backend native]
 *
 * Random-init weights (speed does not depend on the values).
 */
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { makeConfig } from '../src/model/config.js';
import { Llama } from '../src/model/llama.js';
import { LoraAdapter, parseLoraTargets } from '../src/model/lora.js';
import { createBackend } from '../src/kernels/index.js';
import { AdamW } from '../src/training/optimizer.js';
import { Rng } from '../src/util/rng.js';

const { values } = parseArgs({
  options: {
    preset: { type: 'string', default: 'mini-15m' }, rank: { type: 'string', default: '16' }, targets: { type: 'string', default: 'wq,wv' },
    batch: { type: 'string', default: '8' }, seq: { type: 'string', default: '256' }, reps: { type: 'string', default: '5' }, backend: { type: 'string' },
  },
});
const B = Number(values.batch), T = Number(values.seq);
const config = makeConfig(String(values.preset), { vocabSize: 259, maxSeqLen: T });
const backend = createBackend(values.backend);
const rng = new Rng(1);
const tokens = Int32Array.from({ length: B * T }, () => rng.int(config.vocabSize));
const targets = Int32Array.from({ length: B * T }, () => rng.int(config.vocabSize));

const full = new Llama(config, backend);
full.init(1);
const fullOpt = new AdamW(full.layout, backend);
const base = new Llama(config, backend);
base.params.data.set(full.params.data);
const lora = new LoraAdapter(config, { rank: Number(values.rank), alpha: Number(values.rank), targets: parseLoraTargets(String(values.targets)) }, backend);
lora.init(1);
lora.attach(base);
const loraOpt = new AdamW(lora.layout, backend);

function step(model: Llama, grads: () => void, update: () => void): number {
  const t = performance.now();
  grads();
  model.forwardBackward(tokens, targets, B, T, 1 / (B * T));
  update();
  return (performance.now() - t) / 1000;
}
const runs = { full: [] as number[], lora: [] as number[] };
for (let rep = 0; rep <= Number(values.reps); rep++) {
  const f = step(full, () => full.ensureGrads().data.fill(0), () => fullOpt.update(full.params, full.grads!, 1e-5));
  const l = step(base, () => {
    base.ensureGrads().data.fill(0);
    lora.ensureGrads().data.fill(0);
  }, () => loraOpt.update(lora.params, lora.grads!, 1e-5));
  if (rep > 0) { // the first pair warms up (allocations)
    runs.full.push(f);
    runs.lora.push(l);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const flags = readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)?.[1].trim().split(/\s+/).filter((f) => /^(avx|fma|amx)/.test(f)) ?? [];
console.log(JSON.stringify({
  bench: 'lora-step', preset: values.preset, batch: B, seq: T, rank: Number(values.rank), targets: lora.lora.targets, backend: backend.name,
  trained_params: { full: full.layout.total, lora: lora.layout.total },
  cpu: cpus()[0]?.model ?? 'unknown', cpu_flags: flags, cores: cpus().length, node: process.version,
  results: { full_step_s: { median: median(runs.full), all: runs.full }, lora_step_s: { median: median(runs.lora), all: runs.lora } },
  lora_speedup_vs_full: median(runs.full) / median(runs.lora),
  note: 'shared machine: timings are noisy; compare numbers from one run',
}, null, 1));
