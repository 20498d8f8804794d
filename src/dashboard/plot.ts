/**
 * `llama-ts plot`: the dashboard's charts (web/series.ts CHARTS, the same lines, smoothing and colours) as one SVG
 * file, drawn here without a browser; a PNG is that SVG rendered by the system Chromium through playwright-core.
 */
import { writeFileSync } from 'node:fs';
import { RunLog } from './runlog.js';
import { CHARTS, chartLines, type ChartDef, type Line, type RunData, type XAxis } from '../web/series.js';
import { formatValue } from '../web/format.js';
import { UserError } from '../util/errors.js';

export interface PlotOptions {
  x?: XAxis;
  /** Logarithmic y on loss, learning rate and gradient norm. Default false. */
  logY?: boolean;
  smoothing?: number;
  /** Charts per row (default 2). */
  columns?: number;
}

/** Every run's whole log read once (bounded like the dashboard: old points thinned past 4000 steps). */
export function readRuns(dirs: readonly string[]): RunData[] {
  return dirs.map((dir, i) => {
    const log = new RunLog(dir, i, { readChunk: 1 << 30 });
    log.poll();
    const s = log.snapshot();
    if (s.state === 'missing') throw new UserError(`'${dir}' is not a run directory`);
    if (s.steps.length === 0 && s.evals.length === 0) throw new UserError(`'${dir}' has no steps in train.jsonl yet`);
    return { name: s.name, steps: s.steps, evals: s.evals, tokensPerStep: s.info?.tokensPerStep ?? null };
  });
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const f = (v: number) => (Math.round(v * 10) / 10).toString();

const PANEL = { w: 560, h: 320, left: 62, right: 14, top: 52, bottom: 40 };

/** The charts of these runs as one SVG document. */
export function plotSvg(runs: readonly RunData[], o: PlotOptions = {}): string {
  const axis = o.x ?? 'step';
  const cols = o.columns ?? 2;
  const defs = CHARTS.filter((c) => chartLines(c, runs, axis, o.smoothing).some((l) => l.ys.some(Number.isFinite)));
  const rows = Math.ceil(defs.length / cols);
  const width = cols * PANEL.w;
  const height = rows * PANEL.h + 30;
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="10" y="20" font-size="14" font-weight="bold">${esc(runs.map((r) => r.name).join(' vs '))}</text>`,
  ];
  defs.forEach((def, i) => {
    const x0 = (i % cols) * PANEL.w;
    const y0 = 30 + Math.floor(i / cols) * PANEL.h;
    out.push(panel(def, chartLines(def, runs, axis, o.smoothing), x0, y0, axis, Boolean(o.logY && def.log), runs.length > 1, i));
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

function panel(def: ChartDef, lines: Line[], x0: number, y0: number, axis: XAxis, log: boolean, manyRuns: boolean, id: number): string {
  const w = PANEL.w - PANEL.left - PANEL.right;
  const h = PANEL.h - PANEL.top - PANEL.bottom;
  const px = x0 + PANEL.left;
  const py = y0 + PANEL.top;
  const ok = (y: number) => Number.isFinite(y) && (!log || y > 0);
  const xs = lines.flatMap((l) => l.xs);
  const ys = lines.flatMap((l) => l.ys.filter(ok));
  let [xMin, xMax] = [Math.min(...xs), Math.max(...xs)];
  if (!(xMax > xMin)) [xMin, xMax] = [xMin - 1, xMin + 1];
  let [yMin, yMax] = ys.length ? [Math.min(...ys), Math.max(...ys)] : [0, 1];
  if (!(yMax > yMin)) [yMin, yMax] = log ? [yMin / 2, yMax * 2] : [yMin - 1, yMax + 1];
  const ty = (y: number) => (log ? Math.log10(y) : y);
  const [ly0, ly1] = [ty(yMin), ty(yMax)];
  const X = (x: number) => px + ((x - xMin) / (xMax - xMin)) * w;
  const Y = (y: number) => py + (1 - (ty(y) - ly0) / (ly1 - ly0)) * h;
  const out: string[] = [`<g>`, `<text x="${px}" y="${y0 + 16}" font-size="13" font-weight="bold">${esc(def.title)}</text>`];
  out.push(`<clipPath id="c${id}"><rect x="${px}" y="${py}" width="${w}" height="${h}"/></clipPath>`);
  for (const t of ticks(xMin, xMax, false)) {
    out.push(`<line x1="${f(X(t))}" y1="${py}" x2="${f(X(t))}" y2="${py + h}" stroke="#eee"/>`);
    out.push(`<text x="${f(X(t))}" y="${py + h + 14}" text-anchor="middle">${formatValue(t)}</text>`);
  }
  for (const t of ticks(yMin, yMax, log)) {
    out.push(`<line x1="${px}" y1="${f(Y(t))}" x2="${px + w}" y2="${f(Y(t))}" stroke="#eee"/>`);
    out.push(`<text x="${px - 6}" y="${f(Y(t) + 4)}" text-anchor="end">${formatValue(t)}</text>`);
  }
  out.push(`<rect x="${px}" y="${py}" width="${w}" height="${h}" fill="none" stroke="#888"/>`);
  out.push(`<text x="${px + w / 2}" y="${py + h + 30}" text-anchor="middle" fill="#555">${axis === 'tokens' ? 'tokens' : 'step'}</text>`);
  let legendX = px;
  lines.forEach((l) => {
    const color = l.color;
    const opacity = l.def.faint ? ' stroke-opacity="0.35"' : '';
    const dash = l.def.eval ? ' stroke-dasharray="5 3"' : l.run > 0 && l.def.color ? ` stroke-dasharray="${4 * l.run} 3"` : '';
    const segs: string[] = [];
    let pen = false;
    l.xs.forEach((x, k) => {
      const y = l.ys[k];
      if (!ok(y)) return void (pen = false);
      segs.push(`${pen ? 'L' : 'M'}${f(X(x))} ${f(Y(y))}`);
      pen = true;
    });
    out.push(`<path d="${segs.join('')}" fill="none" stroke="${color}" stroke-width="${l.def.faint ? 1 : 1.6}"${opacity}${dash} clip-path="url(#c${id})"/>`);
    if (l.def.eval) l.xs.forEach((x, k) => ok(l.ys[k]) && out.push(`<circle cx="${f(X(x))}" cy="${f(Y(l.ys[k]))}" r="2.5" fill="${color}"/>`));
    const label = manyRuns || lines.length > 1 ? `${manyRuns ? `${l.runName} ` : ''}${l.def.label}` : l.runName;
    const ly = y0 + 32;
    out.push(`<line x1="${f(legendX)}" y1="${ly - 4}" x2="${f(legendX + 14)}" y2="${ly - 4}" stroke="${color}" stroke-width="2"${opacity}${dash}/>`);
    out.push(`<text x="${f(legendX + 18)}" y="${ly}">${esc(label)}</text>`);
    legendX += 26 + label.length * 6;
  });
  out.push('</g>');
  return out.join('\n');
}

/** About five round tick values in [a, b]: 1-2-5 steps, or powers of ten (and 2×, 5× when few) on a log axis. */
export function ticks(a: number, b: number, log: boolean): number[] {
  if (log) {
    const out: number[] = [];
    for (let e = Math.floor(Math.log10(a)); e <= Math.ceil(Math.log10(b)); e++) {
      for (const m of Math.log10(b / a) < 2 ? [1, 2, 5] : [1]) {
        const v = m * 10 ** e;
        if (v >= a && v <= b) out.push(v);
      }
    }
    return out.length ? out : [a, b];
  }
  const raw = (b - a) / 5;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((k) => k * p).find((s) => s >= raw) ?? 10 * p;
  const out: number[] = [];
  for (let v = Math.ceil(a / step) * step; v <= b + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/** Writes the charts to `out`: .svg directly, .png through the system Chromium (one-line error without it). */
export async function writePlot(runs: readonly RunData[], out: string, o: PlotOptions = {}): Promise<void> {
  const svg = plotSvg(runs, o);
  if (/\.svg$/i.test(out)) return writeFileSync(out, svg);
  if (!/\.png$/i.test(out)) throw new UserError(`--out must end in .svg or .png, got '${out}'`);
  writeFileSync(out, await svgToPng(svg));
}

/** The executable of the system Chromium, if there is one. */
export const CHROMIUM_PATHS = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];

export async function findChromium(): Promise<string | null> {
  const { existsSync } = await import('node:fs');
  const env = process.env.LLAMA_TS_CHROMIUM;
  if (env) return existsSync(env) ? env : null;
  return CHROMIUM_PATHS.find((p) => existsSync(p)) ?? null;
}

async function svgToPng(svg: string): Promise<Buffer> {
  const exe = await findChromium();
  if (!exe) throw new UserError('writing a .png needs Chromium (apt-get install chromium, or set LLAMA_TS_CHROMIUM); --out curves.svg needs nothing');
  let pw: typeof import('playwright-core');
  try {
    pw = await import('playwright-core');
  } catch {
    throw new UserError('writing a .png needs the playwright-core package (npm install playwright-core); --out curves.svg needs nothing');
  }
  const browser = await pw.chromium.launch({ executablePath: exe, args: ['--no-sandbox'] });
  try {
    const m = /width="(\d+)" height="(\d+)"/.exec(svg)!;
    const page = await browser.newPage({ viewport: { width: Number(m[1]), height: Number(m[2]) }, deviceScaleFactor: 2 });
    await page.setContent(`<html><body style="margin:0">${svg}</body></html>`);
    return await page.locator('svg').screenshot();
  } finally {
    await browser.close();
  }
}
