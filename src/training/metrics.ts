/**
 * Where a run's numbers go. The trainer reports to `MetricSink`s and knows nothing of files or terminals; the
 * train.jsonl log (`JsonlSink`) and the progress bar (`ProgressSink`) are two sinks, and callers add their own
 * (TrainOptions.sinks). Every callback is optional.
 */
import { appendFileSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/fsutil.js';
import type { StepTimes } from './step.js';
import { Progress } from '../util/progress.js';

/** One line of train.jsonl per optimizer step; the keys and their order are the log format. */
export interface StepRecord {
  /** 1-based: the number of optimizer steps done. */
  step: number;
  loss: number;
  lr: number;
  grad_norm: number;
  tokens_per_s: number;
  mfu: number;
  ms: StepTimes;
}

/** One line of train.jsonl per evaluation (at step 0, every --eval-every steps, at the end). */
export interface EvalRecord {
  step: number;
  eval_loss: number;
}

/** One line of train.jsonl per evaluation task (`train --eval-task`) at each evaluation: the task's metrics. */
export interface TaskEvalRecord {
  step: number;
  task: string;
  /** Documents evaluated. */
  n: number;
  metrics: Record<string, number>;
}

/** One line of train.jsonl per generated sample (--sample-every): the prompt and the model's continuation. */
export interface SampleRecord {
  step: number;
  prompt: string;
  sample: string;
}

export interface RunStart {
  runDir: string;
  /** The model's shapes and the run's settings (run.json shows them to the dashboard). */
  config?: unknown;
  hyper?: Readonly<Record<string, number>>;
  /** Steps already done (a resumed run starts past 0). */
  startStep: number;
  /** The step this invocation stops at (--stop-at, or the total). */
  stopAt: number;
  /** Total steps of the schedule. */
  steps: number;
  /** Ranks in the data-parallel group. */
  world: number;
}

export interface RunEnd {
  /** Steps done. */
  step: number;
  /** finished: the schedule's last step; stopped: at --stop-at; interrupted: Ctrl-C; failed: an error (divergence). */
  outcome: 'finished' | 'stopped' | 'interrupted' | 'failed';
  checkpoint: string | null;
  /** outcome failed: the error's message; diverged: it was the non-finite loss or gradient-norm stop. */
  error?: string;
  diverged?: boolean;
}

export interface MetricSink {
  onStart?(run: RunStart): void;
  onStep?(record: StepRecord): void;
  onEval?(record: EvalRecord): void;
  onTaskEval?(record: TaskEvalRecord): void;
  onSample?(record: SampleRecord): void;
  onCheckpoint?(path: string, step: number): void;
  /** A line for the person watching (the interrupt notice). */
  onNotice?(line: string): void;
  /** Called once, also when the run fails. */
  onEnd?(end: RunEnd): void;
}

/**
 * The run's train.jsonl: one JSON object per step and per evaluation, appended as they happen. At the start the log
 * is cut back to what the run had written up to its starting step (atomically: a temporary sibling renamed over
 * it): a fresh run starts an empty log (a dead run's lines go), a resumed run keeps the records up to its
 * checkpoint's step and drops later ones (they are written again) and torn lines (a full disk). So the log always
 * equals what one uninterrupted run would have written.
 */
export class JsonlSink implements MetricSink {
  constructor(readonly path: string) {}
  onStart(run: RunStart): void {
    cutLog(this.path, run.startStep);
  }
  onStep(r: StepRecord): void {
    appendFileSync(this.path, JSON.stringify(r) + '\n');
  }
  onEval(r: EvalRecord): void {
    appendFileSync(this.path, JSON.stringify(r) + '\n');
  }
  onTaskEval(r: TaskEvalRecord): void {
    appendFileSync(this.path, JSON.stringify({ step: r.step, task: r.task, n: r.n, ...r.metrics }) + '\n');
  }
  onSample(r: SampleRecord): void {
    appendFileSync(this.path, JSON.stringify(r) + '\n');
  }
}

/** The name of the run-state file in a run directory (RunInfoSink). */
export const RUN_INFO = 'run.json';

/**
 * run.json in the run directory: who writes the run (pid and host: the dashboard tells a crashed run, whose process
 * is gone, from a live one), its model and settings, progress (start, stop and total steps), the latest checkpoint
 * and how it ended. Rewritten atomically at the start, at each checkpoint and at the end; train.jsonl keeps the
 * numbers. `status` is running, then finished | stopped | interrupted | failed | diverged.
 */
export interface RunInfo {
  pid: number;
  host: string;
  started: string;
  updated: string;
  status: 'running' | RunEnd['outcome'] | 'diverged';
  startStep: number;
  stopAt: number;
  steps: number;
  world: number;
  /** Tokens per optimizer step over all ranks (the dashboard's tokens axis), when the settings are known. */
  tokensPerStep: number | null;
  config: unknown;
  hyper: Readonly<Record<string, number>> | null;
  checkpoint: { path: string; step: number } | null;
  error: string | null;
}

export class RunInfoSink implements MetricSink {
  private info: RunInfo | null = null;
  constructor(readonly path: string, private readonly dp = 1) {}
  static in(runDir: string, dp = 1): RunInfoSink {
    return new RunInfoSink(join(runDir, RUN_INFO), dp);
  }
  onStart(run: RunStart): void {
    const now = new Date().toISOString();
    const h = run.hyper;
    this.info = {
      pid: process.pid, host: hostname(), started: now, updated: now, status: 'running', startStep: run.startStep, stopAt: run.stopAt, steps: run.steps, world: run.world,
      tokensPerStep: h ? h.batch * h.seq * h.accum * this.dp : null, config: run.config ?? null, hyper: h ?? null, checkpoint: null, error: null,
    };
    this.write();
  }
  onCheckpoint(path: string, step: number): void {
    if (!this.info) return;
    this.info.checkpoint = { path, step };
    this.write();
  }
  onEnd(end: RunEnd): void {
    if (!this.info) return;
    this.info.status = end.diverged ? 'diverged' : end.outcome;
    this.info.error = end.error ?? null;
    this.write();
  }
  private write(): void {
    this.info!.updated = new Date().toISOString();
    writeFileAtomic(this.path, [JSON.stringify(this.info, null, 1) + '\n']);
  }
}

/** Keeps the complete records of `path` whose step is at most `step` (none for step 0), rewriting it atomically. */
export function cutLog(path: string, step: number): void {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return writeFileAtomic(path, []);
    throw e;
  }
  const kept: string[] = [];
  if (step > 0) {
    for (const line of text.split('\n')) {
      let rec: unknown;
      try {
        rec = JSON.parse(line);
      } catch {
        continue; // torn or empty
      }
      const s = (rec as { step?: unknown } | null)?.step;
      if (typeof s === 'number' && s <= step) kept.push(line + '\n');
    }
  }
  const next = kept.join('');
  if (next !== text) writeFileAtomic(path, [next]);
}

/** The progress bar on stderr (plain periodic lines when not a terminal), with evaluations and notices above it. */
export class ProgressSink implements MetricSink {
  private bar: Progress | null = null;
  constructor(private readonly stream: NodeJS.WriteStream = process.stderr) {}
  onStart(run: RunStart): void {
    this.bar = new Progress(run.stopAt, 'train', this.stream);
  }
  onStep(r: StepRecord): void {
    this.bar?.update(r.step, `loss ${r.loss.toFixed(4)} lr ${r.lr.toExponential(2)} |g| ${r.grad_norm.toFixed(2)} ${r.tokens_per_s.toFixed(0)} tok/s MFU ${(r.mfu * 100).toFixed(1)}%`);
  }
  onEval(r: EvalRecord): void {
    this.bar?.log(`step ${r.step}: held-out loss ${r.eval_loss.toFixed(4)}`);
  }
  onTaskEval(r: TaskEvalRecord): void {
    this.bar?.log(`step ${r.step}: ${r.task} ${Object.entries(r.metrics).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(' ')}`);
  }
  onSample(r: SampleRecord): void {
    this.bar?.log(`step ${r.step} sample: ${JSON.stringify(r.prompt + r.sample)}`);
  }
  onNotice(line: string): void {
    this.bar?.log(line);
  }
  onEnd(): void {
    this.bar?.done();
  }
}

/** One sink that forwards every call to each of `sinks`, in order. */
export function fanOut(sinks: readonly MetricSink[]): Required<MetricSink> {
  return {
    onStart: (run) => sinks.forEach((s) => s.onStart?.(run)),
    onStep: (r) => sinks.forEach((s) => s.onStep?.(r)),
    onEval: (r) => sinks.forEach((s) => s.onEval?.(r)),
    onTaskEval: (r) => sinks.forEach((s) => s.onTaskEval?.(r)),
    onSample: (r) => sinks.forEach((s) => s.onSample?.(r)),
    onCheckpoint: (path, step) => sinks.forEach((s) => s.onCheckpoint?.(path, step)),
    onNotice: (line) => sinks.forEach((s) => s.onNotice?.(line)),
    onEnd: (end) => sinks.forEach((s) => s.onEnd?.(end)),
  };
}
