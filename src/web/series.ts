/**
 * What the dashboard charts show, declared once for the page (charts.ts, uPlot in the browser) and for
 * `llama-ts plot` (dashboard/plot.ts, SVG): the charts, their lines, the smoothing, and the columns a set of runs
 * turns into (one shared x axis, a column per line with null where a run has no point).
 */

/** One step of a run, as train.jsonl writes it (training/metrics.ts StepRecord). */
export interface StepPoint {
  step: number;
  loss: number;
  lr: number;
  grad_norm: number;
  tokens_per_s: number;
  mfu: number;
  ms: Record<string, number>;
}

export interface EvalPoint {
  step: number;
  eval_loss: number;
}

/** A run as the charts see it. `tokensPerStep` (run.json) makes the tokens axis; null: steps only. */
export interface RunData {
  name: string;
  steps: StepPoint[];
  evals: EvalPoint[];
  tokensPerStep: number | null;
}

export type XAxis = 'step' | 'tokens';

export interface LineDef {
  /** Legend text after the run's name. */
  label: string;
  /** The value of a step; evaluation lines read `evals` instead. */
  value?: (p: StepPoint) => number;
  eval?: boolean;
  /** Exponential moving average of `value` (debiased, as TensorBoard). */
  smooth?: boolean;
  /** Drawn faint (the raw loss under its smoothed line). */
  faint?: boolean;
  /** The line's own colour (phases); otherwise the run's. */
  color?: string;
  /** Shown only when this says so for the run's steps (communication: not the microseconds of one process's no-op). */
  show?: (steps: readonly StepPoint[]) => boolean;
}

export interface ChartDef {
  id: string;
  title: string;
  /** May the y axis be logarithmic (the log toggle applies)? */
  log: boolean;
  lines: LineDef[];
}

const mean = (steps: readonly StepPoint[], f: (p: StepPoint) => number) => steps.reduce((a, p) => a + (f(p) || 0), 0) / Math.max(1, steps.length);
/** Communication is charted when it is at least 1 % of the step (under mpirun), not for one process's no-op reduce. */
const commMatters = (steps: readonly StepPoint[]) => mean(steps, (p) => p.ms.comm) >= 0.01 * mean(steps, (p) => p.ms.total);
const phase = (name: string, color: string): LineDef => ({ label: `${name} ms`, value: (p) => p.ms[name] ?? NaN, color, ...(name === 'comm' ? { show: commMatters } : {}) });

export const CHARTS: readonly ChartDef[] = [
  { id: 'loss', title: 'loss (training raw and smoothed, held-out)', log: true, lines: [
    { label: 'train', value: (p) => p.loss, faint: true },
    { label: 'train (smoothed)', value: (p) => p.loss, smooth: true },
    { label: 'held-out', eval: true },
  ] },
  { id: 'lr', title: 'learning rate', log: true, lines: [{ label: 'lr', value: (p) => p.lr }] },
  { id: 'grad_norm', title: 'gradient norm (before clipping)', log: true, lines: [{ label: '|g|', value: (p) => p.grad_norm }] },
  { id: 'tokens_per_s', title: 'tokens / s', log: false, lines: [{ label: 'tok/s', value: (p) => p.tokens_per_s }] },
  { id: 'mfu', title: 'MFU (%)', log: false, lines: [{ label: 'MFU %', value: (p) => p.mfu * 100 }] },
  { id: 'phases', title: 'phase times (ms per step)', log: false, lines: [
    phase('forward', '#1f77b4'), phase('loss', '#ff7f0e'), phase('backward', '#2ca02c'), phase('optimizer', '#9467bd'), phase('comm', '#d62728'),
  ] },
];

/** The colour of run i (Tableau 10, then around again). */
export const RUN_COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
export const runColor = (i: number) => RUN_COLORS[i % RUN_COLORS.length];

/** Debiased exponential moving average (TensorBoard's smoothing); NaN values are passed over. */
export function smooth(values: readonly number[], weight: number): number[] {
  const out: number[] = [];
  let last = 0;
  let n = 0;
  for (const v of values) {
    if (!Number.isFinite(v)) {
      out.push(NaN);
      continue;
    }
    last = last * weight + (1 - weight) * v;
    n++;
    out.push(last / (1 - weight ** n));
  }
  return out;
}

/** One drawn line: its run, its definition and its points. */
export interface Line {
  run: number;
  runName: string;
  def: LineDef;
  color: string;
  xs: number[];
  ys: number[];
}

export function xOf(run: RunData, step: number, axis: XAxis): number {
  return axis === 'tokens' && run.tokensPerStep ? step * run.tokensPerStep : step;
}

/** The lines of a chart for these runs (run index = position in `runs`; null entries are runs not loaded yet). */
export function chartLines(chart: ChartDef, runs: readonly (RunData | null)[], axis: XAxis, smoothing = 0.9): Line[] {
  const lines: Line[] = [];
  runs.forEach((run, i) => {
    if (!run) return;
    for (const def of chart.lines) {
      let xs: number[];
      let ys: number[];
      if (def.eval) {
        xs = run.evals.map((e) => xOf(run, e.step, axis));
        ys = run.evals.map((e) => e.eval_loss);
      } else {
        xs = run.steps.map((p) => xOf(run, p.step, axis));
        ys = run.steps.map(def.value!);
        if (def.smooth) ys = smooth(ys, smoothing);
      }
      if (def.show && !def.show(run.steps)) continue;
      lines.push({ run: i, runName: run.name, def, color: def.color ?? runColor(i), xs, ys });
    }
  });
  return lines;
}

/** The lines on one shared, sorted x axis: uPlot's data layout (null where a line has no point at that x). */
export function alignLines(lines: readonly Line[], positiveOnly = false): { x: number[]; ys: (number | null)[][] } {
  const set = new Set<number>();
  for (const l of lines) for (const x of l.xs) set.add(x);
  const x = [...set].sort((a, b) => a - b);
  const at = new Map(x.map((v, i) => [v, i]));
  const ys = lines.map((l) => {
    const col: (number | null)[] = new Array(x.length).fill(null);
    l.xs.forEach((xv, k) => {
      const y = l.ys[k];
      col[at.get(xv)!] = Number.isFinite(y) && (!positiveOnly || y > 0) ? y : null;
    });
    return col;
  });
  return { x, ys };
}

/** Every second element of the older half, all of the newer half: bounds the memory of a long history, recent points whole. */
export function thin<T>(a: readonly T[]): T[] {
  const half = a.length >> 1;
  const out: T[] = [];
  for (let i = 0; i < half; i += 2) out.push(a[i]);
  for (let i = half; i < a.length; i++) out.push(a[i]);
  return out;
}
