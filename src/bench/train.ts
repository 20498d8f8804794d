/**
 * Training-throughput measurement shared by `llama-ts bench train` and bench/train-throughput.ts: one model, random
 * tokens, a few timed steps split into phases (forward, loss incl. the head's backward, backward, optimizer), and the
 * model FLOPs utilisation against the peak measured on this machine (kernels/peak.ts: the native SGEMM on a
 * compute-bound shape, measured again here; `train` and the demo use the same cached figure).
 *
 * Memory by category (weights, gradients, optimizer, activations saved, workspace): predicted from the config by the
 * formulas `plan cluster` uses (plan/activations.ts) and measured: each category's buffers as allocated, the growth
 * of the process's ArrayBuffer memory across the first forward (when the activations are allocated), and the
 * process's peak RSS, heap and external memory at the end.
 */
import type { Backend } from '../kernels/backend.js';
import { Llama, type DTypeName, type Recompute } from '../model/llama.js';
import { trainingMemoryCategories, type MemoryCategories } from '../plan/activations.js';
import { paramCount, trainFlopsPerToken, type LlamaConfig } from '../model/config.js';
import { Rng } from '../util/rng.js';
import { peakRssBytes } from '../util/memory.js';
import { peakFlops, type Peak } from '../kernels/peak.js';

export interface TrainBenchOptions {
  config: LlamaConfig;
  batch: number;
  seq: number;
  backend: Backend;
  /** timed steps (after one untimed warm-up step) */
  steps: number;
  /** GFLOP/s taken as 100% for the MFU; measured with measureSgemmPeak() when omitted */
  peakGflops?: number;
  seed?: number;
  /** activation checkpointing policy (default none) */
  recompute?: Recompute;
  /** precision of the matmuls and saved activations (default f32) */
  dtype?: DTypeName;
}

export interface MemoryReport {
  predicted: MemoryCategories;
  /** the buffers each category holds, as allocated */
  measured: MemoryCategories & {
    /** growth of the process's ArrayBuffer bytes across the first forward, less the bf16 weight copy made there */
    activations_process: number;
    peak_rss: number;
    heap_used: number;
    external: number;
    array_buffers: number;
  };
  /** measured / predicted activations saved (the planner's formula against this run) */
  activations_saved_ratio: number;
}

export interface TrainBenchResult {
  backend: string;
  threads: number | null;
  simd: string | null;
  params: number;
  batch: number;
  seq: number;
  steps: number;
  tokens_per_s: number;
  step_ms: number;
  /** CPU time of the process (all its threads) per step, median: tokens per CPU-second is tokens_per_cpu_s */
  step_cpu_ms: number;
  tokens_per_cpu_s: number;
  phase_ms: { forward: number; loss: number; backward: number; optimizer: number };
  loss: number;
  flops_per_token: number;
  model_gflops: number;
  peak_gflops: number;
  peak_source: string;
  mfu: number;
  recompute: Recompute;
  /** bytes of saved activations and backward scratch */
  activation_bytes: number;
  dtype: DTypeName;
  memory: MemoryReport;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

export { measureSgemmPeak, SGEMM_PEAK_SOURCE as PEAK_SOURCE } from '../kernels/peak.js';

/** A model, its random batch, gradients and AdamW moments, as benchTrain and trainStepper run them. */
function setUp(o: Omit<TrainBenchOptions, 'steps' | 'peakGflops'>) {
  const { config, batch: B, seq: T, backend: be } = o;
  if (T > config.maxSeqLen) config.maxSeqLen = T;
  const model = new Llama(config, be, { recompute: o.recompute, dtype: o.dtype });
  model.init(o.seed ?? 1);
  const rng = new Rng((o.seed ?? 1) + 1);
  const N = B * T;
  const tokens = Int32Array.from({ length: N }, () => rng.int(config.vocabSize));
  const targets = Int32Array.from({ length: N }, () => rng.int(config.vocabSize));
  const P = model.layout.total;
  const grads = model.ensureGrads();
  const m = be.alloc(P);
  const v = be.alloc(P);
  /** the optimizer: global-norm clipping at 1.0, AdamW over the flat buffers, zero the gradients */
  const optimize = (step: number) => {
    const norm = Math.sqrt(be.sumSquares(grads.data, P));
    if (norm > 1) be.scale(grads.data, 1 / norm, P);
    be.adamw(model.params.data, grads.data, m, v, P, { lr: 3e-4, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step });
    grads.data.fill(0);
  };
  return { config, B, T, be, model, N, tokens, targets, P, m, v, optimize };
}

/**
 * One configuration's training steps as benchTrain times them (forward, loss, backward, optimizer), one at a time:
 * for benchmarks that alternate two configurations' steps in one process, so that both meet the same load on a
 * shared machine. The first call is a warm-up like benchTrain's.
 */
export function trainStepper(o: Omit<TrainBenchOptions, 'steps' | 'peakGflops'>): { tokens: number; step(): { ms: number; cpuMs: number } } {
  const t = setUp(o);
  let s = 0;
  return {
    tokens: t.N,
    step() {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      t.model.forward(t.tokens, t.B, t.T);
      t.model.loss(t.targets, 1 / t.N);
      t.model.backward();
      t.optimize(++s);
      const ms = performance.now() - t0;
      const cpu = process.cpuUsage(c0);
      return { ms, cpuMs: (cpu.user + cpu.system) / 1000 };
    },
  };
}

export function benchTrain(o: TrainBenchOptions): TrainBenchResult {
  const { config, B, T, be, model, N, tokens, targets, P, m, v, optimize } = setUp(o);
  const times = { forward: [] as number[], loss: [] as number[], backward: [] as number[], optimizer: [] as number[], step: [] as number[], cpu: [] as number[] };
  let lastLoss = NaN;
  let actProcess = 0;
  for (let s = 0; s <= o.steps; s++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const before = s === 0 ? process.memoryUsage().arrayBuffers : 0;
    model.forward(tokens, B, T);
    if (s === 0) actProcess = process.memoryUsage().arrayBuffers - before - model.lowWeightBytes();
    const t1 = performance.now();
    lastLoss = model.loss(targets, 1 / N) / N;
    const t2 = performance.now();
    model.backward();
    const t3 = performance.now();
    optimize(s + 1);
    const t4 = performance.now();
    const cpu = process.cpuUsage(c0);
    if (s === 0) continue; // warm-up: first-touch allocation, pool start
    times.cpu.push((cpu.user + cpu.system) / 1000);
    times.forward.push(t1 - t0);
    times.loss.push(t2 - t1);
    times.backward.push(t3 - t2);
    times.optimizer.push(t4 - t3);
    times.step.push(t4 - t0);
  }
  const stepMs = median(times.step);
  const tps = N / (stepMs / 1000);
  const fpt = trainFlopsPerToken(config, T);
  const modelGflops = (fpt * tps) / 1e9;
  const measured = o.peakGflops === undefined ? peakFlops(be, true, model.dtype) : null;
  const peak = o.peakGflops ?? (measured as Peak).flops / 1e9;
  const nb = be as Backend & { threads?: () => number; simd?: () => string };
  const r3 = (x: number) => Math.round(x * 1000) / 1000;
  return {
    backend: be.name,
    threads: nb.threads ? nb.threads() : null,
    simd: nb.simd ? nb.simd() : null,
    params: paramCount(config),
    batch: B,
    seq: T,
    steps: o.steps,
    tokens_per_s: r3(tps),
    step_ms: r3(stepMs),
    step_cpu_ms: r3(median(times.cpu)),
    tokens_per_cpu_s: r3(N / (median(times.cpu) / 1000)),
    phase_ms: { forward: r3(median(times.forward)), loss: r3(median(times.loss)), backward: r3(median(times.backward)), optimizer: r3(median(times.optimizer)) },
    loss: r3(lastLoss),
    flops_per_token: fpt,
    model_gflops: r3(modelGflops),
    peak_gflops: r3(peak),
    peak_source: measured ? measured.source : '--peak',
    mfu: r3(modelGflops / peak),
    recompute: model.recompute,
    activation_bytes: model.activationBytes(),
    dtype: model.dtype,
    memory: memoryReport(model, B, T, [m, v], actProcess),
  };
}

function memoryReport(model: Llama, batch: number, seq: number, moments: { byteLength: number }[], actProcess: number): MemoryReport {
  const P = model.layout.total;
  const f = model.params.data.BYTES_PER_ELEMENT;
  const predicted = trainingMemoryCategories(model.config, { params: P, batch, seq, recompute: model.recompute, dtype: model.dtype, bytesPerFloat: f });
  const act = model.activationBytesByKind();
  const weights = model.params.data.byteLength + model.lowWeightBytes();
  const gradients = model.grads?.data.byteLength ?? 0;
  const optimizer = moments.reduce((a, b) => a + b.byteLength, 0);
  const mu = process.memoryUsage();
  return {
    predicted,
    measured: {
      weights, gradients, optimizer, activations_saved: act.saved, workspace: act.workspace,
      total: weights + gradients + optimizer + act.saved + act.workspace,
      activations_process: actProcess,
      peak_rss: peakRssBytes(),
      heap_used: mu.heapUsed, external: mu.external, array_buffers: mu.arrayBuffers,
    },
    activations_saved_ratio: Math.round((act.saved / predicted.activations_saved) * 1000) / 1000,
  };
}
