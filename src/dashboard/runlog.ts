/**
 * One run directory as the dashboard sees it: a tail of its train.jsonl (only the bytes appended since the last
 * look are read; a line is taken once its newline is there, a malformed line is skipped and counted) and its
 * run.json (training/metrics.ts RunInfoSink: pid and host of the writer, config, settings, progress, checkpoint,
 * outcome). Memory is bounded: past `maxPoints` step records the older half is thinned to every second point, so a
 * very long run keeps full resolution for its recent steps and a coarser history (what the page loads first).
 */
import { closeSync, openSync, readSync, readFileSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { RUN_INFO, type RunInfo, type EvalRecord, type SampleRecord } from '../training/metrics.js';
import { thin, type StepPoint } from '../web/series.js';

export type { StepPoint };

/** The state shown for a run: live, ended (with its outcome), diverged, crashed (writer gone without an end), missing (directory gone). */
export type RunState = 'waiting' | 'running' | 'ended' | 'diverged' | 'crashed' | 'stalled' | 'missing';

export interface RunSnapshot {
  id: number;
  name: string;
  dir: string;
  state: RunState;
  /** Why the state is what it is, in a few words. */
  detail: string;
  info: RunInfo | null;
  steps: StepPoint[];
  evals: EvalRecord[];
  samples: SampleRecord[];
  /** Lines skipped as malformed so far. */
  malformed: number;
  /** ms since the epoch of the last line read. */
  lastLineAt: number | null;
}

/** New records from one poll. `reset`: the log was rewritten (a fresh run, or a resume cutting it back): start over. */
export interface RunUpdate {
  reset: boolean;
  steps: StepPoint[];
  evals: EvalRecord[];
  samples: SampleRecord[];
  stateChanged: boolean;
}

export interface RunLogOptions {
  /** Step records kept in memory before the older half is thinned (default 4000). */
  maxPoints?: number;
  /** Evaluations and samples kept (the latest; default 1000 and 50). */
  maxEvals?: number;
  maxSamples?: number;
  /** A run with no new line for this long is checked for its process (default 3000 ms). */
  quietMs?: number;
  /** On another host the process cannot be checked: no line for this long reads as stalled (default 10 min). */
  staleMs?: number;
  /** Bytes read per poll at most (default 8 MiB): a huge existing log is read over several polls. */
  readChunk?: number;
}

/** Whether process `pid` is alive on this host (signal 0: nothing is sent). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

export class RunLog {
  readonly dir: string;
  readonly name: string;
  private readonly o: Required<RunLogOptions>;
  private offset = 0;
  private ino = -1;
  private pending = '';
  private steps: StepPoint[] = [];
  private evals: EvalRecord[] = [];
  private samples: SampleRecord[] = [];
  private malformed = 0;
  private lastLineAt: number | null = null;
  private info: RunInfo | null = null;
  private infoMtime = -1;
  private state: RunState = 'waiting';
  private detail = 'no train.jsonl yet';

  constructor(dir: string, readonly id: number, o: RunLogOptions = {}) {
    this.dir = resolve(dir);
    this.name = basename(this.dir);
    this.o = { maxPoints: 4000, maxEvals: 1000, maxSamples: 50, quietMs: 3000, staleMs: 600_000, readChunk: 8 << 20, ...o };
  }

  snapshot(): RunSnapshot {
    return {
      id: this.id, name: this.name, dir: this.dir, state: this.state, detail: this.detail, info: this.info,
      steps: this.steps.slice(), evals: this.evals.slice(), samples: this.samples.slice(), malformed: this.malformed, lastLineAt: this.lastLineAt,
    };
  }

  /** Reads what was appended since the last poll and re-derives the state. Never throws for a missing or odd file. */
  poll(now = Date.now()): RunUpdate {
    const u: RunUpdate = { reset: false, steps: [], evals: [], samples: [], stateChanged: false };
    const before = `${this.state} ${this.detail}`;
    this.readInfo();
    const log = join(this.dir, 'train.jsonl');
    let st: ReturnType<typeof statSync> | null = null;
    try {
      st = statSync(log);
    } catch {
      st = null;
    }
    if (st && st.isFile()) {
      if (st.ino !== this.ino || st.size < this.offset) {
        if (this.ino !== -1) u.reset = true;
        this.clear();
        this.ino = st.ino;
      }
      if (st.size > this.offset) this.read(log, st.size, u, now);
    }
    this.deriveState(st !== null, now);
    u.stateChanged = `${this.state} ${this.detail}` !== before;
    return u;
  }

  private clear(): void {
    this.offset = 0;
    this.pending = '';
    this.steps = [];
    this.evals = [];
    this.samples = [];
    this.malformed = 0;
  }

  private read(path: string, size: number, u: RunUpdate, now: number): void {
    const n = Math.min(size - this.offset, this.o.readChunk);
    const buf = Buffer.alloc(n);
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch {
      return;
    }
    let got = 0;
    try {
      while (got < n) {
        const r = readSync(fd, buf, got, n - got, this.offset + got);
        if (r === 0) break;
        got += r;
      }
    } finally {
      closeSync(fd);
    }
    this.offset += got;
    const text = this.pending + buf.subarray(0, got).toString('utf8');
    const lines = text.split('\n');
    this.pending = lines.pop() ?? ''; // an incomplete last line waits for its newline
    for (const line of lines) {
      if (line.trim() === '') continue;
      this.lastLineAt = now;
      this.take(line, u);
    }
  }

  /** One complete line: a step, an evaluation or a sample; anything else counts as malformed. */
  private take(line: string, u: RunUpdate): void {
    let r: Record<string, unknown>;
    try {
      r = JSON.parse(line);
    } catch {
      this.malformed++;
      return;
    }
    if (!r || typeof r !== 'object' || typeof r.step !== 'number') {
      this.malformed++;
      return;
    }
    if (typeof r.loss === 'number' || r.loss === null) {
      const ms = (r.ms && typeof r.ms === 'object' ? r.ms : {}) as Record<string, number>;
      const p: StepPoint = { step: r.step, loss: num(r.loss), lr: num(r.lr), grad_norm: num(r.grad_norm), tokens_per_s: num(r.tokens_per_s), mfu: num(r.mfu), ms };
      this.steps.push(p);
      u.steps.push(p);
      if (this.steps.length > this.o.maxPoints) this.steps = thin(this.steps);
    } else if (typeof r.eval_loss === 'number' || r.eval_loss === null) {
      const e: EvalRecord = { step: r.step, eval_loss: num(r.eval_loss) };
      this.evals.push(e);
      u.evals.push(e);
      if (this.evals.length > this.o.maxEvals) this.evals = thin(this.evals);
    } else if (typeof r.sample === 'string') {
      const s: SampleRecord = { step: r.step, prompt: typeof r.prompt === 'string' ? r.prompt : '', sample: r.sample };
      this.samples.push(s);
      u.samples.push(s);
      if (this.samples.length > this.o.maxSamples) this.samples.shift();
    } else {
      this.malformed++;
    }
  }

  private readInfo(): void {
    const p = join(this.dir, RUN_INFO);
    try {
      const st = statSync(p);
      if (st.mtimeMs === this.infoMtime) return;
      this.info = JSON.parse(readFileSync(p, 'utf8')) as RunInfo;
      this.infoMtime = st.mtimeMs;
    } catch {
      // absent (an older run), being replaced, or torn: keep what we had
    }
  }

  private deriveState(logExists: boolean, now: number): void {
    let dirExists = true;
    try {
      dirExists = statSync(this.dir).isDirectory();
    } catch {
      dirExists = false;
    }
    const info = this.info;
    const set = (s: RunState, d: string): void => {
      this.state = s;
      this.detail = d;
    };
    if (!dirExists) return set('missing', 'the run directory is gone');
    if (info && info.status === 'diverged') return set('diverged', info.error ?? 'non-finite loss or gradient norm');
    if (info && info.status !== 'running') return set('ended', info.status === 'failed' ? `failed: ${info.error ?? 'error'}` : info.status);
    if (!logExists && !info) return set('waiting', 'no train.jsonl yet');
    const quietFor = now - (this.lastLineAt ?? 0);
    if (info && info.status === 'running') {
      if (quietFor >= this.o.quietMs) {
        if (info.host === hostname()) {
          if (!processAlive(info.pid)) return set('crashed', `process ${info.pid} is gone without ending the run`);
        } else if (quietFor >= this.o.staleMs) {
          return set('stalled', `no new line for ${Math.round(quietFor / 1000)} s (process on ${info.host})`);
        }
      }
      return set('running', `pid ${info.pid} on ${info.host}`);
    }
    // a log without run.json (written before it existed, or by another tool): only its age tells
    return quietFor >= this.o.staleMs ? set('ended', 'no run.json; no new line for a while') : set('running', 'no run.json');
  }
}

function num(v: unknown): number {
  return typeof v === 'number' ? v : NaN; // JSON has no NaN: a diverged value may be null
}
