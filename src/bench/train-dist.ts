/**
 * `bench train` under mpirun: the real training loop (training/trainer.ts) on random tokens over the ranks, with a
 * counting Comm (parallel/counting.ts), reporting from rank 0: aggregate tokens/s, the phase times with the exposed
 * communication (the time the step waited for collectives), the bytes this rank sent per step by group against what
 * `plan cluster`'s model predicts for the same layout (plan/cluster.ts commBytesPerStep, with llama-ts's 4-byte
 * elements), and this rank's memory (weights, gradients, optimizer, activations) beside the planner's memory model
 * for the layout (which assumes GPU training's element sizes, printed with it: llama-ts keeps fp32 weights and
 * 8 B/param of AdamW moments, and its saved activation set differs from Korthikanti's GPT block).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Backend } from '../kernels/backend.js';
import type { LlamaConfig } from '../model/config.js';
import type { Recompute } from '../model/llama.js';
import type { Comm } from '../parallel/comm.js';
import { CountingComm, emptyTally } from '../parallel/counting.js';
import { train, type StepRecord } from '../training/trainer.js';
import { HYPER_DEFAULTS } from '../training/settings.js';
import { commBytesPerStep, memoryPerGpu, BYTES } from '../plan/cluster.js';
import { GPUS } from '../plan/gpus.js';
import type { Batch, BatchSource } from '../data/source.js';
import { Rng, type RngState } from '../util/rng.js';

export interface DistBenchOptions {
  config: LlamaConfig;
  batch: number;
  seq: number;
  accum: number;
  backend: Backend;
  /** timed steps, after one untimed warm-up step */
  steps: number;
  world: Comm;
  tp: number;
  sp: boolean;
  zero: 0 | 1;
  recompute?: Recompute;
}

/** Random tokens, resumable (the trainer asks for a position). */
class RandomTokens implements BatchSource {
  private rng: Rng;
  constructor(private readonly vocab: number, seed: number) {
    this.rng = new Rng(seed);
  }
  next(batch: number, seq: number): Batch {
    const n = batch * seq;
    return { tokens: Int32Array.from({ length: n }, () => this.rng.int(this.vocab)), targets: Int32Array.from({ length: n }, () => this.rng.int(this.vocab)) };
  }
  state(): RngState {
    return this.rng.state();
  }
  restore(s: unknown): void {
    this.rng = new Rng(s as RngState);
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const r3 = (x: number) => Math.round(x * 1000) / 1000;

/** Runs on every rank; returns the report on rank 0 and null elsewhere. */
export async function benchTrainDistributed(o: DistBenchOptions): Promise<Record<string, unknown> | null> {
  const { config: c, world } = o;
  const dp = world.world / o.tp;
  const tally = emptyTally();
  // the groups the trainer's topology makes: TP first, then DP (a group of the whole world is the world itself)
  const label = o.tp === 1 ? 'dp' : o.tp === world.world ? 'tp' : 'world';
  const comm = new CountingComm(world, tally, label, o.tp > 1 && o.tp < world.world ? ['tp', 'dp'] : []);
  const records: StepRecord[] = [];
  const perStep: Record<string, number>[] = [];
  let before = { ...tally.bytes };
  const runDir = mkdtempSync(join(tmpdir(), 'llama-ts-bench-'));
  const r = await train({
    config: c, backend: o.backend, runDir, train: new RandomTokens(c.vocabSize, 1), heldOut: null, tokenizer: { kind: 'bytes' },
    hyper: { ...HYPER_DEFAULTS, steps: o.steps + 1, batch: o.batch, seq: o.seq, accum: o.accum, lr: 3e-4, warmup: 0, evalEvery: 0, evalBatches: 0, ckptEvery: 0 },
    quiet: true, comm, tp: o.tp, sp: o.sp, zero: o.zero, recompute: o.recompute, checkpoints: false,
    sinks: [{
      onStep: (rec) => {
        records.push(rec);
        perStep.push(Object.fromEntries(Object.entries(tally.bytes).map(([k, v]) => [k, v - (before[k] ?? 0)])));
        before = { ...tally.bytes };
      },
    }],
  });
  rmSync(runDir, { recursive: true, force: true });
  if (world.rank !== 0) return null;
  const timed = records.slice(1);
  const sent = perStep.slice(1);
  const bytesBy = (k: string) => median(sent.map((b) => b[k] ?? 0));
  const measured = { tp: bytesBy('tp'), dp: bytesBy('dp'), other: bytesBy('world') + bytesBy('split') };
  const layout = { tp: o.tp, pp: 1, dp, sp: o.sp, microBatch: o.batch, recompute: o.recompute ?? 'none', zero: o.zero, interleave: 1 };
  const predicted = commBytesPerStep(c, layout, o.seq, o.accum, { activation: 4, grad: 4 });
  // the planner's memory model (GPU training: bf16 weights, fp32 gradients, 12 B/param optimizer, 16-bit activations);
  // the device only sets the usable memory, which is not compared
  const plan = memoryPerGpu({ config: c, seqLen: o.seq, globalBatch: o.batch * o.accum * dp, gpus: world.world, gpuName: 'A100-80GB', gpu: GPUS['A100-80GB'] }, layout);
  const phase = (k: keyof StepRecord['ms']) => r3(median(timed.map((t) => t.ms[k] ?? 0)));
  const stepMs = median(timed.map((t) => t.ms.total));
  const P = r.model.layout.total * 4;
  return {
    ranks: world.world, tp: o.tp, sp: o.sp, dp, zero: o.zero, batch: o.batch, seq: o.seq, accum: o.accum, steps: o.steps,
    tokens_per_s: r3(median(timed.map((t) => t.tokens_per_s))),
    step_ms: r3(stepMs),
    phase_ms: { forward: phase('forward'), loss: phase('loss'), backward: phase('backward'), optimizer: phase('optimizer'), comm: phase('comm') },
    exposed_comm_fraction: r3(median(timed.map((t) => (t.ms.comm ?? 0) / t.ms.total))),
    bytes_sent_per_step_rank0: { tp: Math.round(measured.tp), dp: Math.round(measured.dp), other: Math.round(measured.other) },
    plan_cluster_bytes_per_step: { tp: Math.round(o.accum * predicted.tpPerMicroBatch), dp: Math.round(predicted.dp) },
    measured_over_predicted: {
      tp: predicted.tpPerMicroBatch > 0 ? r3(measured.tp / (o.accum * predicted.tpPerMicroBatch)) : null,
      dp: predicted.dp > 0 ? r3(measured.dp / predicted.dp) : null,
    },
    memory_bytes_rank0: {
      weights: P, gradients: P, optimizer: o.zero === 1 && dp > 1 ? (2 * P) / dp : 2 * P, activations: r.model.activationBytes(),
    },
    plan_cluster_memory_bytes: {
      element_bytes: BYTES, weights: Math.round(plan.weights), gradients: Math.round(plan.gradients), optimizer: Math.round(plan.optimizer), activations: Math.round(plan.activations),
    },
  };
}
