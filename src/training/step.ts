/**
 * One optimizer step, read top to bottom as the data flows:
 *   zero grads → for each micro-batch: forward, loss (+ head backward), backward → reduce (Comm) → clip → lr → check → update
 * Every phase is a short function below. The reduce is the data-parallel seam: the flat gradient buffer and the
 * loss sum are all-reduced over the data-parallel group `dp`, and the gradient scale counts every rank's tokens,
 * so the sum is the mean over the global batch. The gradient all-reduce is bucketed and overlapped: during the
 * last micro-batch's backward each span of the buffer (head, each layer from the last, embeddings) starts its
 * non-blocking all-reduce as soon as the backward is done with it (Llama.backward's gradsReady), and `reduce`
 * only waits for what is still in flight; the `comm` time is that exposed wait. The buckets and their order are the
 * same every step, so runs are reproducible bit for bit. Tensor parallelism happens inside the model (its `tp`
 * group); here it only enters the gradient norm (split tensors' squares are summed over the group).
 * With LocalComm (one process) the reduce does nothing and the arithmetic is the single-process one, bit for bit.
 */
import type { Llama } from '../model/llama.js';
import type { FlatTensors } from '../model/params.js';
import type { BatchSource } from '../data/source.js';
import type { Comm, CommRequest } from '../parallel/comm.js';
import { AdamW, clipGradNorm, clipCoefficient } from './optimizer.js';
import { ZeroAdamW } from './zero.js';
import { learningRate, type ScheduleOptions } from './schedule.js';
import type { Hyper } from './settings.js';
import { UserError } from '../util/errors.js';

/** What one step works on. */
export interface StepState {
  model: Llama;
  /** AdamW on the whole model, or ZeRO-1: each data-parallel rank updates a slice with its slice of the moments. */
  opt: AdamW | ZeroAdamW;
  data: BatchSource;
  hyper: Hyper;
  schedule: ScheduleOptions;
  /** The data-parallel group (gradients and loss are summed over it). */
  dp: Comm;
}

/**
 * Milliseconds per phase (the train.jsonl `ms` object, in this key order). `optimizer` is the rest of the step:
 * drawing batches, zeroing, clipping, the checks and the AdamW update.
 */
export interface StepTimes {
  forward: number;
  loss: number;
  backward: number;
  optimizer: number;
  total: number;
  comm: number;
}

export interface StepResult {
  /** Mean loss per token over the global batch (all micro-batches, all ranks). */
  loss: number;
  /** Global gradient norm before clipping. */
  norm: number;
  lr: number;
  ms: StepTimes;
}

/** Applies the optimizer step with 0-based index `step` (the schedule's position). */
export function trainStep(s: StepState, step: number): StepResult {
  const clock = new PhaseClock();
  const grads = zeroGrads(s.model);
  const scale = gradScale(s.hyper, s.dp.world);
  const inFlight: CommRequest[] = [];
  const zero = s.opt instanceof ZeroAdamW ? s.opt : null;
  let loss = 0;
  for (let micro = 0; micro < s.hyper.accum; micro++) {
    const last = micro === s.hyper.accum - 1;
    loss += microBatch(s, scale, clock, last && !zero ? startReduce(s.dp, grads, inFlight) : undefined);
  }
  loss = zero ? reduceScatter(zero, grads, loss, clock) : reduce(s.dp, grads, inFlight, loss, clock);
  const norm = zero ? clipSlice(zero, s.hyper.clip) : clipGradNorm(grads, s.model.backend, s.hyper.clip, s.model.tp);
  const lr = learningRate(step, s.schedule);
  checkFinite(loss, norm, step, lr);
  if (zero) zero.update(s.model.params, lr); // the slice, then all-gather the parameters
  else (s.opt as AdamW).update(s.model.params, grads, lr);
  return { loss, norm, lr, ms: clock.stop() };
}

function zeroGrads(model: Llama): FlatTensors {
  const grads = model.ensureGrads();
  grads.data.fill(0);
  return grads;
}

/** d(loss)/d(token loss): one over the tokens of the whole step, on every rank and in every micro-batch. */
export function gradScale(h: Hyper, world: number): number {
  return 1 / (world * h.accum * h.batch * h.seq);
}

/**
 * Forward, loss and backward of one micro-batch; gradients accumulate into the flat buffer. Returns its scaled loss.
 * `gradsReady` is told each gradient span as soon as the backward has finished it.
 */
function microBatch(s: StepState, scale: number, clock: PhaseClock, gradsReady?: (offset: number, size: number) => void): number {
  const { batch, seq } = s.hyper;
  const b = s.data.next(batch, seq);
  clock.start();
  s.model.forward(b.tokens, batch, seq);
  clock.lap('forward');
  const loss = s.model.loss(b.targets, scale) * scale;
  clock.lap('loss');
  s.model.backward(gradsReady);
  clock.lap('backward');
  return loss;
}

/** With more than one data-parallel rank: a hook that starts the all-reduce of each gradient span as it is ready. */
function startReduce(dp: Comm, grads: FlatTensors, inFlight: CommRequest[]): ((offset: number, size: number) => void) | undefined {
  if (dp.world === 1) return undefined;
  return (offset, size) => inFlight.push(dp.iallReduce(grads.data.subarray(offset, offset + size)));
}

/**
 * Finishes summing the gradients over the data-parallel ranks (the bucket all-reduces started during the
 * backward, or one all-reduce of the whole buffer) and sums the loss; returns the global loss.
 */
function reduce(dp: Comm, grads: FlatTensors, inFlight: CommRequest[], loss: number, clock: PhaseClock): number {
  clock.start();
  if (dp.world === 1) dp.allReduce(grads.data); // nothing was started: one rank (a no-op for LocalComm)
  for (const r of inFlight) r.wait();
  const sum = new Float64Array([loss]);
  dp.allReduce(sum);
  clock.lap('comm');
  return sum[0];
}

/** ZeRO-1: each rank receives the summed gradients of its slice; the loss is summed as with all-reduce. */
function reduceScatter(zero: ZeroAdamW, grads: FlatTensors, loss: number, clock: PhaseClock): number {
  clock.start();
  zero.reduce(grads);
  const sum = new Float64Array([loss]);
  zero.dp.allReduce(sum);
  clock.lap('comm');
  return sum[0];
}

/** Global-norm clipping of the slices (the norm over every rank's slice; see clipGradNorm). */
function clipSlice(zero: ZeroAdamW, maxNorm: number): number {
  const norm = Math.sqrt(zero.sumSquares());
  const coef = clipCoefficient(norm, maxNorm);
  if (coef < 1) zero.scale(coef);
  return norm;
}

/** The run stopped on a non-finite loss or gradient norm (before the update; the last checkpoint is kept). */
export class TrainingDiverged extends UserError {}

/** A non-finite loss or norm stops the run before the update (and before any checkpoint of the bad state). */
function checkFinite(loss: number, norm: number, step: number, lr: number): void {
  if (!Number.isFinite(loss) || !Number.isFinite(norm)) {
    throw new TrainingDiverged(`training diverged: loss ${loss}, gradient norm ${norm} at step ${step + 1} (lr ${lr.toExponential(2)}); try a lower --lr. The last good checkpoint is kept.`);
  }
}

type Phase = 'forward' | 'loss' | 'backward' | 'comm';

/** Wall time of the step and of its timed phases; whatever is not in a phase counts as `optimizer`. */
class PhaseClock {
  private readonly begin = performance.now();
  private last = this.begin;
  private readonly phases: Record<Phase, number> = { forward: 0, loss: 0, backward: 0, comm: 0 };

  /** The next lap starts now (the time since the last one is not a phase's). */
  start(): void {
    this.last = performance.now();
  }

  /** The time since the last start or lap belongs to `phase`. */
  lap(phase: Phase): void {
    const now = performance.now();
    this.phases[phase] += now - this.last;
    this.last = now;
  }

  stop(): StepTimes {
    const total = performance.now() - this.begin;
    const { forward, loss, backward, comm } = this.phases;
    return { forward, loss, backward, optimizer: total - forward - loss - backward - comm, total, comm };
  }
}
