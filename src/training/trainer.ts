/**
 * The training loop. One step reads top to bottom in `trainStep`:
 *   zero grads → for each micro-batch: forward, loss (+ head backward), backward → clip → check → lr → update
 * Everything around it (evaluation, logging, checkpoints, resume) lives in `train`.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Backend } from '../kernels/backend.js';
import { Llama } from '../model/llama.js';
import { trainFlopsPerToken, type LlamaConfig } from '../model/config.js';
import { AdamW } from './optimizer.js';
import { trainStep, type StepState, type StepTimes } from './step.js';
import { LOCAL_COMM, type Comm } from '../parallel/comm.js';
import { checkHyper, hyperFromSaved, type Hyper } from './settings.js';
import { saveCheckpoint, openCheckpoint, CHECKPOINT_FORMAT, type CheckpointState, type TokenizerRef } from './checkpoint.js';
import type { BatchSource } from '../data/source.js';
import { UserError } from '../util/errors.js';
import { Progress } from '../util/progress.js';
import { nominalPeakFlops } from '../util/hardware.js';

export { HYPER_DEFAULTS, type Hyper } from './settings.js';

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
  /** Continue from the run's latest checkpoint, with its hyper-parameters. */
  resume?: boolean;
  /** On resume: a new total step count (to extend a finished run). */
  extendSteps?: number;
  /** Stop (with a checkpoint) after this many total steps, keeping the schedule of `hyper.steps`. */
  stopAt?: number;
  /** Called after every step; the CLI uses it for the progress bar. Default: a Progress on stderr. */
  quiet?: boolean;
  peakFlops?: number;
  /** Data-parallel group the gradients and the loss are all-reduced over after backward. Default: LOCAL_COMM (one process). */
  comm?: Comm;
}

export interface StepRecord {
  step: number;
  loss: number;
  lr: number;
  grad_norm: number;
  tokens_per_s: number;
  mfu: number;
  ms: StepTimes;
}

export interface TrainResult {
  steps: number;
  losses: number[];
  firstEvalLoss: number | null;
  lastEvalLoss: number | null;
  checkpoint: string | null;
  model: Llama;
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
  const c = o.config;
  let h = { ...o.hyper };
  checkHyper(h, c);
  mkdirSync(o.runDir, { recursive: true });
  const model = new Llama(c, o.backend);
  const opt = new AdamW(model.layout, o.backend, { beta1: h.beta1, beta2: h.beta2, eps: h.eps, weightDecay: h.weightDecay });
  const log = join(o.runDir, 'train.jsonl');
  let startStep = 0;
  if (o.resume) {
    const ck = openCheckpoint(o.runDir);
    if (JSON.stringify(ck.state.config) !== JSON.stringify(c)) {
      throw new UserError(`checkpoint in '${o.runDir}' was trained with a different model config: ${JSON.stringify(ck.state.config)}`);
    }
    const saved = hyperFromSaved(ck.state.hyper);
    // The schedule, batch shape and optimizer must be the checkpoint's for an exact continuation; only the
    // total step count may be changed (to extend a run).
    h = { ...saved, steps: o.extendSteps ?? saved.steps };
    checkHyper(h, c);
    ck.loadInto(model.params, { m: opt.m, v: opt.v });
    opt.step = ck.state.step;
    o.train.restore(ck.state.data);
    startStep = ck.state.step;
  } else {
    model.init(h.seed);
  }
  model.ensureGrads();
  const stopAt = Math.min(o.stopAt ?? h.steps, h.steps);
  const comm = o.comm ?? LOCAL_COMM;
  const tokensPerStep = h.batch * h.seq * h.accum * comm.world;
  const flopsPerToken = trainFlopsPerToken(c, h.seq);
  const peak = o.peakFlops ?? nominalPeakFlops();
  const progress = o.quiet ? null : new Progress(stopAt, 'train');
  const losses: number[] = [];
  let firstEval: number | null = null;
  let lastEval: number | null = null;
  let lastCkpt: string | null = null;
  let lastLoss: number | null = null;
  let completed = startStep;
  const schedule = { peakLr: h.lr, warmupSteps: h.warmup, totalSteps: h.steps, minRatio: h.minLrRatio };
  const stepState: StepState = { model, opt, data: o.train, hyper: h, schedule, comm };

  const runEval = (step: number) => {
    if (!o.heldOut || h.evalBatches <= 0) return;
    const l = evaluate(model, o.heldOut(), h.evalBatches, h.batch, h.seq);
    if (firstEval === null) firstEval = l;
    lastEval = l;
    appendFileSync(log, JSON.stringify({ step, eval_loss: l }) + '\n');
    progress?.log(`step ${step}: held-out loss ${l.toFixed(4)}`);
  };
  const checkpoint = (step: number) => {
    const state: CheckpointState = {
      format: CHECKPOINT_FORMAT, version: 1, step, config: c, hyper: { ...h }, data: o.train.state(),
      tokenizer: o.tokenizer, lastLoss, savedAt: new Date().toISOString(),
    };
    lastCkpt = saveCheckpoint({ runDir: o.runDir, state, params: model.params, moments: { m: opt.m, v: opt.v }, tokenizerFile: o.tokenizerFile });
  };

  let interrupted = false;
  const onSignal = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    progress?.log('interrupt: finishing this step and saving a checkpoint (press Ctrl-C again to quit at once)');
  };
  process.on('SIGINT', onSignal);
  try {
    if (startStep === 0) runEval(0);
    for (let step = startStep; step < stopAt; step++) {
      const r = trainStep(stepState, step);
      const rec: StepRecord = {
        step: step + 1, loss: r.loss, lr: r.lr, grad_norm: r.norm,
        tokens_per_s: (tokensPerStep * 1000) / r.ms.total,
        mfu: (flopsPerToken * tokensPerStep * 1000) / r.ms.total / (peak * comm.world),
        ms: r.ms,
      };
      lastLoss = r.loss;
      losses.push(r.loss);
      appendFileSync(log, JSON.stringify(rec) + '\n');
      progress?.update(step + 1, `loss ${r.loss.toFixed(4)} lr ${r.lr.toExponential(2)} |g| ${r.norm.toFixed(2)} ${rec.tokens_per_s.toFixed(0)} tok/s MFU ${(rec.mfu * 100).toFixed(1)}%`);
      const done = step + 1;
      completed = done;
      if (h.evalEvery > 0 && done % h.evalEvery === 0 && done !== h.steps) runEval(done);
      if ((h.ckptEvery > 0 && done % h.ckptEvery === 0) || done === stopAt || interrupted) checkpoint(done);
      if (interrupted) break;
      await new Promise<void>((res) => setImmediate(res)); // let signals and I/O through
    }
    if (stopAt === h.steps && (startStep < h.steps)) runEval(h.steps);
  } finally {
    process.off('SIGINT', onSignal);
    progress?.done();
  }
  return { steps: completed, losses, firstEvalLoss: firstEval, lastEvalLoss: lastEval, checkpoint: lastCkpt, model };
}
