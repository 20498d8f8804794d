/**
 * The dashboard's charts in the browser, on uPlot: one chart per entry of CHARTS (series.ts), every run overlaid
 * with a legend that reads out the values under the cursor. Independent of the server: feed it runs and points from
 * anywhere (the dashboard's event stream, a training loop in the page).
 *
 *   const charts = createCharts(document.querySelector('#charts'), { x: 'step', logY: true });
 *   charts.setRun(0, { name: 'lr-3e-4', steps: [], evals: [], tokensPerStep: 4096 });  // add or replace run 0
 *   charts.appendPoints(0, [{ step: 1, loss: 5.5, lr: 3e-4, grad_norm: 1.2, tokens_per_s: 900, mfu: 0.3, ms: {...} }]);
 *   charts.appendEvals(0, [{ step: 1, eval_loss: 5.4 }]);
 *   charts.setOptions({ x: 'tokens', logY: false, smoothing: 0.8 });
 *   charts.destroy();
 *
 * Needs uPlot's stylesheet (uplot/dist/uPlot.min.css) on the page and 'uplot' resolvable (an import map or a bundler).
 */
import uPlot from 'uplot';
import { CHARTS, alignLines, chartLines, thin, type ChartDef, type EvalPoint, type RunData, type StepPoint, type XAxis } from './series.js';
import { formatValue } from './format.js';

export type { RunData, StepPoint, EvalPoint, XAxis, ChartDef };

export interface ChartOptions {
  /** x axis: optimizer steps (default) or tokens seen. */
  x?: XAxis;
  /** Logarithmic y on the charts that allow it (loss, lr, gradient norm). Default false. */
  logY?: boolean;
  /** EMA weight of the smoothed loss, 0 to 0.999 (default 0.9). */
  smoothing?: number;
  /** Height of each chart in CSS pixels (default 220). */
  height?: number;
  /** Points kept per run before the older half is thinned (default 8000): a page left open on a long run stays small. */
  maxPoints?: number;
  charts?: readonly ChartDef[];
}

export interface Charts {
  setRun(id: number, run: RunData): void;
  removeRun(id: number): void;
  appendPoints(id: number, steps: readonly StepPoint[]): void;
  appendEvals(id: number, evals: readonly EvalPoint[]): void;
  setOptions(o: Omit<ChartOptions, 'charts' | 'height' | 'maxPoints'>): void;
  /** The uPlot instances, by chart id (for tests and extra styling). */
  readonly plots: ReadonlyMap<string, uPlot>;
  destroy(): void;
}

interface Cell {
  def: ChartDef;
  box: HTMLElement;
  plot: uPlot | null;
  /** The line layout the plot was made for: a new run or line rebuilds it. */
  key: string;
}

export function createCharts(container: HTMLElement, options: ChartOptions = {}): Charts {
  const o = { x: 'step' as XAxis, logY: false, smoothing: 0.9, height: 220, maxPoints: 8000, ...options };
  const defs = o.charts ?? CHARTS;
  const runs: (RunData | null)[] = [];
  const plots = new Map<string, uPlot>();
  const cells: Cell[] = defs.map((def) => {
    const box = document.createElement('div');
    box.className = 'chart';
    box.dataset.chart = def.id;
    container.appendChild(box);
    return { def, box, plot: null, key: '' };
  });
  let frame = 0;

  const render = () => {
    frame = 0;
    for (const c of cells) draw(c);
  };
  const schedule = () => {
    if (!frame) frame = requestAnimationFrame(render);
  };

  function draw(c: Cell): void {
    const log = o.logY && c.def.log;
    const lines = chartLines(c.def, runs, o.x, o.smoothing);
    const { x, ys } = alignLines(lines, log);
    const data = [x, ...ys] as uPlot.AlignedData;
    const key = `${log} ${o.x} ${lines.map((l) => `${l.run}:${l.def.label}`).join(',')}`;
    if (c.plot && c.key === key) {
      c.plot.setData(data);
      return;
    }
    c.plot?.destroy();
    const width = Math.max(200, c.box.clientWidth || container.clientWidth || 600);
    const opts: uPlot.Options = {
      title: c.def.title, width, height: o.height,
      scales: { x: { time: false }, y: log ? { distr: 3 } : {} },
      axes: [
        { label: o.x === 'tokens' ? 'tokens' : 'step', values: (_u, splits) => splits.map(axisValue), size: 40 },
        { values: (_u, splits) => splits.map(axisValue), size: 56 },
      ],
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
      series: [
        { label: o.x === 'tokens' ? 'tokens' : 'step', value: (_u, v) => formatValue(v) },
        ...lines.map((l) => ({
          label: runs.filter(Boolean).length > 1 || c.def.lines.length > 1 ? `${l.runName} ${l.def.label}` : l.runName,
          stroke: l.def.faint ? l.color + '55' : l.color,
          width: l.def.faint ? 1 : 1.6,
          dash: l.def.eval ? [5, 3] : l.run > 0 && l.def.color ? [4 * l.run, 3] : undefined,
          spanGaps: true,
          points: { show: l.def.eval ? true : false, size: 6 },
          value: (_u: uPlot, v: number | null) => formatValue(v),
        })),
      ],
    };
    c.plot = new uPlot(opts, data, c.box);
    c.key = key;
    plots.set(c.def.id, c.plot);
  }

  const resize = () => {
    for (const c of cells) if (c.plot) c.plot.setSize({ width: Math.max(200, c.box.clientWidth), height: o.height });
  };
  const observer = typeof ResizeObserver === 'function' ? new ResizeObserver(resize) : null;
  observer?.observe(container);

  return {
    plots,
    setRun(id, run) {
      runs[id] = { ...run, steps: run.steps.slice(), evals: run.evals.slice() };
      schedule();
    },
    removeRun(id) {
      runs[id] = null;
      schedule();
    },
    appendPoints(id, steps) {
      const r = runs[id];
      if (!r || steps.length === 0) return;
      r.steps.push(...steps);
      if (r.steps.length > o.maxPoints) r.steps = thin(r.steps);
      schedule();
    },
    appendEvals(id, evals) {
      const r = runs[id];
      if (!r || evals.length === 0) return;
      r.evals.push(...evals);
      if (r.evals.length > o.maxPoints) r.evals = thin(r.evals);
      schedule();
    },
    setOptions(next) {
      Object.assign(o, next);
      schedule();
    },
    destroy() {
      if (frame) cancelAnimationFrame(frame);
      observer?.disconnect();
      for (const c of cells) {
        c.plot?.destroy();
        c.box.remove();
      }
      plots.clear();
    },
  };
}

/** A tick label; uPlot passes null for the ticks it leaves unlabelled (between decades on a log axis). */
function axisValue(v: number | null): string {
  return v === null || v === undefined ? '' : formatValue(v);
}
