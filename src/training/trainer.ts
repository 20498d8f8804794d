/**
 * The training loop: `train` prepares a run (fresh, or resumed from its latest checkpoint), then repeats
 *   trainStep (step.ts) → report the step to the metric sinks → evaluate / checkpoint when due
 * until the stop step, a Ctrl-C (which finishes the step and checkpoints) or an error. The settings come from the
 * table in settings.ts, the numbers go to MetricSinks (metrics.ts: train.jsonl, progress bar, the caller's), and
 * the gradients cross ranks through the Comm given in the options (one process: LOCAL_COMM).
 *
 * With several ranks (distributed.ts): the world is split into tensor-parallel groups of `tp` ranks and
 * data-parallel groups; each data-parallel rank reads its own share of the batches (RankSlice); only rank 0 logs
 * and writes checkpoints, which hold whole tensors (gathered from the TP shards), so a run saved under one layout
 * resumes under any other; every rank checks at start that it runs the same configuration on the same data.
 *
 * Fine-tuning (docs/FINETUNE.md): `initFrom` replaces the seeded initialisation with a loaded model's weights; with
 * `hyper.loraRank` > 0 a LoRA adapter is attached, the model frozen, and the checkpoints hold the adapter (PEFT files,
 * io/lora.ts) and its moments; a resume reloads the base from `initFrom` and checks its sha256.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Backend } from '../kernels/backend.js';
import { Llama, type Recompute } from '../model/llama.js';
import { trainFlopsPerToken, type LlamaConfig } from '../model/config.js';
import { AdamW } from './optimizer.js';
import { ZeroAdamW } from './zero.js';
import { FlatTensors } from '../model/params.js';
import { trainStep, TrainingDiverged, type StepResult, type StepState } from './step.js';
import { fanOut, JsonlSink, ProgressSink, RunInfoSink, type MetricSink, type RunEnd, type StepRecord } from './metrics.js';
import { LOCAL_COMM, type Comm } from '../parallel/comm.js';
import { topology, gatherFull, checkSameRun, anyRank, type Topology } from './distributed.js';
import { RankSlice } from '../data/source.js';
import { checkHyper, dtypeOf, hyperFromSaved, type Hyper } from './settings.js';
import { checkTrainingFits } from './limits.js';
import { saveCheckpoint, openCheckpoint, readCheckpointState, CHECKPOINT_FORMAT, type CheckpointState, type FinetuneRecord, type TokenizerRef } from '../io/checkpoint.js';
import { LoraAdapter } from '../model/lora.js';
import { readPeftAdapter, readLoraMoments, writePeftAdapter } from '../io/lora.js';
import { shardOf, type TensorLayout } from '../model/params.js';
import type { Projection } from '../model/llama.js';
import { createHash } from 'node:crypto';
import type { BatchSource } from '../data/source.js';
import { UserError } from '../util/errors.js';
import { peakFlops } from '../kernels/peak.js';

export { HYPER_DEFAULTS, type Hyper } from './settings.js';
export type { StepRecord, EvalRecord, TaskEvalRecord, SampleRecord, MetricSink, RunStart, RunEnd, RunInfo } from './metrics.js';
export type { StepTimes } from './step.js';

export interface TrainOptions {
  config: LlamaConfig;
  backend: Backend;
  hyper: Hyper;
  runDir: string;
  train: BatchSource;
  /** A fresh held-out source (same windows every call), or null for no evaluation. */
  heldOut: (() => BatchSource) | null;
  tokenizer: TokenizerRef;
  tokenizerFile?: string;
  /** Continue from the run's latest checkpoint, with its settings. */
  resume?: boolean;
  /** On resume: a new total step count (to extend a finished run). */
  extendSteps?: number;
  /** Stop (with a checkpoint) after this many total steps, keeping the schedule of `hyper.steps`. */
  stopAt?: number;
  /** No progress bar on stderr (the train.jsonl log is always written). */
  quiet?: boolean;
  peakFlops?: number;
  /** All the ranks of the run (MpiComm under mpirun). Default: LOCAL_COMM (one process). */
  comm?: Comm;
  /** Tensor-parallel ranks per model replica (divides the world); the rest of the world is data parallel. Default 1. */
  tp?: number;
  /** Sequence parallelism within each tensor-parallel group (Llama's `sp`). */
  sp?: boolean;
  /** Activation checkpointing (Llama's `recompute`); the same gradients, less memory. Default 'none'. */
  recompute?: Recompute;
  /** 1: ZeRO stage 1, the AdamW moments divided across the data-parallel ranks (zero.ts). Default 0. */
  zero?: 0 | 1;
  /** Sinks that get the run's metrics besides the train.jsonl log and the progress bar. */
  sinks?: MetricSink[];
  /**
   * Tasks run at each evaluation besides the held-out loss (`train --eval-task`; the CLI builds them over the eval
   * layer's runTask), their metrics reported to the sinks (train.jsonl). Rank 0 only; not with tensor parallelism.
   */
  evalTasks?: TaskEvaluator[];
  /** false: write no checkpoint at all, not even at the stop (benchmarks). Default true. */
  checkpoints?: boolean;
  /**
   * Fine-tuning: the weights a fresh run starts from (a loaded model of `config`, whole tensors) instead of the seed's
   * initialisation; with LoRA (hyper.loraRank > 0) the frozen base, on resume too.
   */
  initFrom?: Llama;
  /** LoRA: the projections adapted (default wq, wv). */
  loraTargets?: Projection[];
  /** What state.json records of a fine-tuning run (the --init-from path, the SFT file and template). */
  finetune?: FinetuneRecord;
  /**
   * Text samples every `every` steps and at the last step (train --sample-every), logged to train.jsonl by rank 0.
   * `generate` is given the model between steps (the CLI decodes with inference/generate.ts); it must not change it.
   */
  samples?: { every: number; generate(model: Llama): Promise<{ prompt: string; sample: string }> };
}

/** An evaluation task the loop runs on its model at each evaluation: its name and metrics. */
export interface TaskEvaluator {
  name: string;
  run(model: Llama): Promise<{ n: number; metrics: Record<string, number> }>;
}

export interface TrainResult {
  steps: number;
  losses: number[];
  firstEvalLoss: number | null;
  lastEvalLoss: number | null;
  checkpoint: string | null;
  model: Llama;
  /** This process's rank in the run (0 with one process): only rank 0 logs and saves. */
  rank: number;
  /** finished: the schedule's last step; stopped: at stopAt; interrupted: Ctrl-C (checkpointed at `steps`). */
  outcome: 'finished' | 'stopped' | 'interrupted';
}

/** Mean held-out loss per token over the source's first `batches` batches. */
export function evaluate(model: Llama, source: BatchSource, batches: number, batch: number, seq: number): number {
  let sum = 0;
  let count = 0;
  for (let i = 0; i < batches; i++) {
    const b = source.next(batch, seq);
    model.forward(b.tokens, batch, seq);
    sum += model.loss(b.targets, null);
    for (const t of b.targets) if (t >= 0) count++;
  }
  return sum / Math.max(1, count);
}

export async function train(o: TrainOptions): Promise<TrainResult> {
  const run = new TrainingRun(o, prepare(o));
  return run.run();
}

/** A run ready for its next step. */
interface Prepared {
  hyper: Hyper;
  model: Llama;
  /** LoRA: the adapter the run trains (the model's weights frozen); null: the model's weights are trained. */
  adapter: LoraAdapter | null;
  opt: AdamW<TensorLayout> | ZeroAdamW;
  finetune?: FinetuneRecord;
  /** Steps already done. */
  startStep: number;
  topo: Topology;
  /** This rank's batches. */
  data: BatchSource;
}

/** Model and optimizer for step 0 (initialised from the seed), or the checkpoint's state on resume. */
function prepare(o: TrainOptions): Prepared {
  checkHyper(o.hyper, o.config);
  const topo = topology(o.comm ?? LOCAL_COMM, o.tp ?? 1);
  checkTrainingFits(o.config, { batch: o.hyper.batch, seq: o.hyper.seq, tp: topo.tp.world, floatBytes: o.backend.dtype === 'f64' ? 8 : 4 });
  if (o.evalTasks?.length && topo.tp.world > 1) throw new UserError('evaluation tasks (--eval-task) need the whole model in one process: not with --tp');
  if (topo.world.rank === 0) mkdirSync(o.runDir, { recursive: true });
  const model = new Llama(o.config, o.backend, { tp: topo.tp, sp: o.sp, recompute: o.recompute, dtype: dtypeOf(o.hyper) });
  const data = topo.dp.world > 1 ? new RankSlice(o.train, topo.dp.rank, topo.dp.world) : o.train;
  const r = o.resume ? resume(o, model, topo, data) : fresh(o, model, topo, data);
  checkSameRun(topo.world, { 'model config': o.config, 'settings': r.hyper, 'data position': data.state(), 'checkpoint step': r.startStep });
  model.ensureGrads();
  return r;
}

function fresh(o: TrainOptions, model: Llama, topo: Topology, data: BatchSource): Prepared {
  const hyper = { ...o.hyper };
  if (o.initFrom) copyWeights(o.initFrom, model, topo);
  else model.init(hyper.seed);
  const adapter = hyper.loraRank > 0 ? loraAdapter(o, model, hyper, topo) : null;
  adapter?.init(hyper.seed);
  const finetune = adapter ? { ...o.finetune, baseSha256: weightsSha256(model) } : o.finetune;
  return { hyper, model, adapter, opt: optimizer(model, adapter, hyper, topo, o.zero ?? 0), startStep: 0, topo, data, finetune };
}

/** The starting weights of a fine-tuning run: this rank's shard of each of the loaded model's tensors. */
function copyWeights(from: Llama, model: Llama, topo: Topology): void {
  if (JSON.stringify(from.config) !== JSON.stringify(model.config)) throw new Error('initFrom: the loaded model has another config than the run');
  if (topo.tp.world === 1) return model.params.data.set(from.params.data);
  for (const t of model.layout.tensors) shardOf(t, from.params.get(t.name), model.params.view(t), model.layout.tp);
}

/** A LoRA run's adapter (not yet initialised) attached to the model, whose weights it freezes. */
function loraAdapter(o: TrainOptions, model: Llama, h: Hyper, topo: Topology): LoraAdapter {
  if (topo.world.world > 1) throw new UserError('LoRA training runs in one process for now (no mpirun, --tp or data parallelism)');
  if (!o.initFrom) throw new UserError('--lora trains an adapter over a model: give the model with --init-from MODEL');
  const adapter = new LoraAdapter(o.config, { rank: h.loraRank, alpha: h.loraAlpha, targets: o.loraTargets ?? ['wq', 'wv'] }, o.backend);
  adapter.attach(model);
  adapter.ensureGrads();
  return adapter;
}

/** sha256 of the model's weights as float32: a LoRA checkpoint records its base's, a resume checks it. */
export function weightsSha256(model: Llama): string {
  const d = model.params.data;
  const f = d instanceof Float32Array ? d : Float32Array.from(d);
  return createHash('sha256').update(new Uint8Array(f.buffer, f.byteOffset, f.byteLength)).digest('hex');
}

/**
 * The run's latest checkpoint: weights, AdamW moments and step, data position, and its settings. The schedule,
 * batch shape and optimizer must be the checkpoint's for an exact continuation; only the total step count may
 * change (to extend a run).
 */
function resume(o: TrainOptions, model: Llama, topo: Topology, data: BatchSource): Prepared {
  if (readCheckpointState(o.runDir).state.lora) return resumeLora(o, model, topo, data);
  const ck = openCheckpoint(o.runDir);
  if (JSON.stringify(ck.state.config) !== JSON.stringify(o.config)) {
    throw new UserError(`checkpoint in '${o.runDir}' was trained with a different model config: ${JSON.stringify(ck.state.config)}`);
  }
  const saved = hyperFromSaved(ck.state.hyper);
  const hyper = { ...saved, steps: o.extendSteps ?? saved.steps, accum: perRankAccum(saved.accum * (ck.state.layout?.dp ?? 1), topo.dp.world) };
  checkHyper(hyper, o.config);
  checkTrainingFits(o.config, { batch: hyper.batch, seq: hyper.seq, tp: topo.tp.world, floatBytes: o.backend.dtype === 'f64' ? 8 : 4 });
  const opt = optimizer(model, null, hyper, topo, o.zero ?? 0);
  if (opt instanceof AdamW) {
    ck.loadInto(model.params, { m: opt.m as typeof model.params, v: opt.v as typeof model.params });
  } else {
    const whole = { m: new FlatTensors(model.layout, model.backend), v: new FlatTensors(model.layout, model.backend) };
    ck.loadInto(model.params, whole);
    opt.loadMoments(whole.m, whole.v);
  }
  opt.step = ck.state.step;
  data.restore(ck.state.data);
  return { hyper, model, adapter: null, opt, startStep: ck.state.step, topo, data, finetune: ck.state.finetune };
}

/** A LoRA run's latest checkpoint: the base from o.initFrom (checked against the recorded one), adapter, moments, step, data position. */
function resumeLora(o: TrainOptions, model: Llama, topo: Topology, data: BatchSource): Prepared {
  const { dir, state } = readCheckpointState(o.runDir);
  if (JSON.stringify(state.config) !== JSON.stringify(o.config)) throw new UserError(`checkpoint in '${o.runDir}' was trained with a different model config: ${JSON.stringify(state.config)}`);
  if (!o.initFrom) throw new UserError(`checkpoint '${dir}' is a LoRA adapter: resuming needs its base model (--init-from ${state.finetune?.initFrom ?? 'MODEL'})`);
  copyWeights(o.initFrom, model, topo);
  const sha = weightsSha256(model);
  if (state.finetune?.baseSha256 && state.finetune.baseSha256 !== sha) {
    throw new UserError(`the base model '${state.finetune.initFrom ?? '?'}' has changed since checkpoint '${dir}' was saved (weights sha256 ${sha.slice(0, 12)}…, recorded ${state.finetune.baseSha256.slice(0, 12)}…): an exact resume needs the same base`);
  }
  const saved = hyperFromSaved(state.hyper);
  const hyper = { ...saved, steps: o.extendSteps ?? saved.steps };
  checkHyper(hyper, o.config);
  const loaded = readPeftAdapter(dir, o.config, o.backend).adapter;
  const adapter = loraAdapter({ ...o, loraTargets: loaded.lora.targets }, model, hyper, topo);
  adapter.params.data.set(loaded.params.data);
  const opt = optimizer(model, adapter, hyper, topo, 0) as AdamW<TensorLayout>;
  readLoraMoments(dir, opt.m, opt.v);
  opt.step = state.step;
  data.restore(state.data);
  return { hyper, model, adapter, opt, startStep: state.step, topo, data, finetune: state.finetune };
}

/** The micro-batches each data-parallel rank accumulates so that the global batch stays what the run was saved with. */
function perRankAccum(global: number, dp: number): number {
  if (global % dp !== 0) throw new UserError(`the checkpoint's global batch is ${global} micro-batches, which ${dp} data-parallel ranks cannot share evenly: resume with a number of ranks that divides it`);
  return global / dp;
}

function optimizer(model: Llama, adapter: LoraAdapter | null, h: Hyper, topo: Topology, zero: 0 | 1): AdamW<TensorLayout> | ZeroAdamW {
  const options = { beta1: h.beta1, beta2: h.beta2, eps: h.eps, weightDecay: h.weightDecay };
  if (adapter) return new AdamW<TensorLayout>(adapter.layout, model.backend, options);
  if (zero === 1 && topo.dp.world > 1) return new ZeroAdamW(model.layout, model.backend, options, topo.dp, topo.tp);
  return new AdamW(model.layout, model.backend, options);
}

/** Ctrl-C once: finish the step, checkpoint and stop. Twice: exit at once. */
class Interrupt {
  requested = false;
  private readonly onSignal = () => {
    if (this.requested) process.exit(130);
    this.requested = true;
    this.notify('interrupt: finishing this step and saving a checkpoint (press Ctrl-C again to quit at once)');
  };
  constructor(private readonly notify: (line: string) => void) {
    process.on('SIGINT', this.onSignal);
  }
  dispose(): void {
    process.off('SIGINT', this.onSignal);
  }
}

/** Tokens/s and MFU of a step from its wall time (all ranks: every data-parallel rank's tokens, every rank's peak). */
function throughput(o: TrainOptions, h: Hyper, topo: Topology): (r: StepResult) => { tokens_per_s: number; mfu: number } {
  const tokensPerStep = h.batch * h.seq * h.accum * topo.dp.world;
  const flopsPerToken = trainFlopsPerToken(o.config, h.seq);
  const peak = (o.peakFlops ?? peakFlops(o.backend, false, dtypeOf(o.hyper)).flops) * topo.world.world;
  return (r) => ({ tokens_per_s: (tokensPerStep * 1000) / r.ms.total, mfu: (flopsPerToken * tokensPerStep * 1000) / r.ms.total / peak });
}

/** One invocation of the loop over a prepared run: the steps, the evaluations and checkpoints they make due, the sinks. */
class TrainingRun {
  private readonly h: Hyper;
  private readonly step: StepState;
  private readonly sink: Required<MetricSink>;
  private readonly stopAt: number;
  private readonly rate: ReturnType<typeof throughput>;
  private readonly losses: number[] = [];
  private firstEval: number | null = null;
  private lastEval: number | null = null;
  private lastCkpt: string | null = null;
  private lastLoss: number | null = null;
  /** Steps done, and at the last checkpoint. */
  private done: number;
  private savedStep: number;

  constructor(private readonly o: TrainOptions, private readonly p: Prepared) {
    const h = (this.h = p.hyper);
    const schedule = { peakLr: h.lr, warmupSteps: h.warmup, totalSteps: h.steps, minRatio: h.minLrRatio };
    const trainable = p.adapter ? { params: p.adapter.params, grads: p.adapter.ensureGrads() } : undefined;
    this.step = { model: p.model, opt: p.opt, data: p.data, hyper: h, schedule, dp: p.topo.dp, trainable };
    const lead = p.topo.world.rank === 0; // one rank logs for the run
    const logs = [new JsonlSink(join(o.runDir, 'train.jsonl')), RunInfoSink.in(o.runDir, p.topo.dp.world)];
    this.sink = fanOut(lead ? [...logs, ...(o.quiet ? [] : [new ProgressSink()]), ...(o.sinks ?? [])] : []);
    this.stopAt = Math.min(o.stopAt ?? h.steps, h.steps);
    this.rate = throughput(o, h, p.topo);
    this.done = this.savedStep = p.startStep;
  }

  async run(): Promise<TrainResult> {
    const { h, p } = this;
    const interrupt = new Interrupt((line) => this.sink.onNotice(line));
    let outcome: RunEnd['outcome'] = 'failed';
    let ended: TrainResult['outcome'] = 'stopped';
    let error: unknown = null;
    this.sink.onStart({ runDir: this.o.runDir, config: this.o.config, hyper: { ...h }, startStep: p.startStep, stopAt: this.stopAt, steps: h.steps, world: p.topo.world.world });
    try {
      if (p.startStep === 0) await this.evaluate(0);
      while (this.done < this.stopAt) {
        this.record(trainStep(this.step, this.done));
        await this.afterStep();
        await this.sample();
        await new Promise<void>((res) => setImmediate(res)); // let signals and I/O through
        if ((interrupt.requested = anyRank(p.topo.world, interrupt.requested))) break;
      }
      if (interrupt.requested && this.savedStep !== this.done) this.checkpoint();
      if (this.done === h.steps && p.startStep < h.steps) await this.evaluate(h.steps);
      outcome = ended = this.done === h.steps ? 'finished' : interrupt.requested ? 'interrupted' : 'stopped';
    } catch (e) {
      error = e;
      throw e;
    } finally {
      interrupt.dispose();
      const failure = error === null ? {} : { error: error instanceof Error ? error.message : String(error), diverged: error instanceof TrainingDiverged };
      this.sink.onEnd({ step: this.done, outcome, checkpoint: this.lastCkpt, ...failure });
    }
    return { steps: this.done, losses: this.losses, firstEvalLoss: this.firstEval, lastEvalLoss: this.lastEval, checkpoint: this.lastCkpt, model: p.model, rank: p.topo.world.rank, outcome: ended };
  }

  private record(r: StepResult): void {
    this.done++;
    this.lastLoss = r.loss;
    this.losses.push(r.loss);
    const rec: StepRecord = { step: this.done, loss: r.loss, lr: r.lr, grad_norm: r.norm, ...this.rate(r), ms: r.ms };
    this.sink.onStep(rec);
  }

  /** An evaluation every --eval-every steps (the last step has its own, after the loop); a checkpoint every --ckpt-every and at the stop. */
  private async afterStep(): Promise<void> {
    const { h, done } = this;
    if (h.evalEvery > 0 && done % h.evalEvery === 0 && done !== h.steps) await this.evaluate(done);
    if ((h.ckptEvery > 0 && done % h.ckptEvery === 0) || done === this.stopAt) this.checkpoint();
  }

  /** A text sample every --sample-every steps and at the schedule's last step (rank 0 only: it alone logs). */
  private async sample(): Promise<void> {
    const s = this.o.samples;
    if (!s || s.every <= 0 || this.p.topo.world.rank !== 0) return;
    if (this.done % s.every !== 0 && this.done !== this.h.steps) return;
    const r = await s.generate(this.p.model);
    this.sink.onSample({ step: this.done, prompt: r.prompt, sample: r.sample });
  }

  private async evaluate(step: number): Promise<void> {
    const { h, o } = this;
    if (o.heldOut && h.evalBatches > 0) {
      const loss = evaluate(this.p.model, o.heldOut(), h.evalBatches, h.batch, h.seq);
      this.firstEval ??= loss;
      this.lastEval = loss;
      this.sink.onEval({ step, eval_loss: loss });
    }
    if (this.p.topo.world.rank !== 0) return;
    for (const t of o.evalTasks ?? []) {
      const r = await t.run(this.p.model);
      this.sink.onTaskEval({ step, task: t.name, n: r.n, metrics: r.metrics });
    }
  }

  /** Rank 0 writes whole tensors (gathered from the tensor-parallel shards: every TP rank takes part). */
  private checkpoint(): void {
    const { o, p } = this;
    if (o.checkpoints === false) return;
    const { tp, world } = p.topo;
    const state: CheckpointState = {
      format: CHECKPOINT_FORMAT, version: 1, step: this.done, config: o.config, hyper: { ...this.h }, data: p.data.state(),
      tokenizer: o.tokenizer, lastLoss: this.lastLoss, savedAt: new Date().toISOString(),
      ...(world.world > 1 ? { layout: { tp: tp.world, dp: p.topo.dp.world } } : {}),
      ...(p.finetune ? { finetune: p.finetune } : {}),
    };
    this.savedStep = this.done;
    const ad = p.adapter;
    if (ad) {
      // one process: the adapter and its moments as they are; the frozen base is not saved again
      const opt = p.opt as AdamW<TensorLayout>;
      state.lora = { rank: ad.lora.rank, alpha: ad.lora.alpha, targets: ad.lora.targets };
      const writeWeights = (dir: string) => writePeftAdapter(dir, ad, p.finetune?.initFrom ?? null);
      this.lastCkpt = saveCheckpoint({ runDir: o.runDir, state, writeWeights, moments: { m: opt.m, v: opt.v }, tokenizerFile: o.tokenizerFile });
      this.sink.onCheckpoint(this.lastCkpt, this.done);
      return;
    }
    const whole = (f: typeof p.model.params) => gatherFull(f, o.config, tp, o.backend);
    const params = whole(p.model.params);
    const mine = p.opt instanceof AdamW ? { m: p.opt.m as typeof p.model.params, v: p.opt.v as typeof p.model.params } : p.opt.moments(); // ZeRO: gathered over DP
    const moments = { m: whole(mine.m), v: whole(mine.v) };
    if (world.rank !== 0) return;
    this.lastCkpt = saveCheckpoint({ runDir: o.runDir, state, params, moments, tokenizerFile: o.tokenizerFile });
    this.sink.onCheckpoint(this.lastCkpt, this.done);
  }
}
