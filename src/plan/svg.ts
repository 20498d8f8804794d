/**
 * A small dependency-free SVG line chart with a logarithmic x axis, and the `plan size` chart built on it:
 * predicted loss against training compute for several model sizes (iso-parameter curves), the compute-optimal
 * frontier, and LLaMA's runs as labelled points.
 */
import { CHINCHILLA, computeOptimal, predictedLoss, type ChinchillaFit, type ModelPoint } from './scaling.js';

export interface Series {
  label: string;
  points: [number, number][];
  color: string;
  dashed?: boolean;
  width?: number;
}

export interface Marker {
  label: string;
  x: number;
  y: number;
  color: string;
}

export interface ChartSpec {
  title: string;
  xLabel: string;
  yLabel: string;
  xMin: number;
  xMax: number;
  yMin: number;
  yMax: number;
  series: Series[];
  markers: Marker[];
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export function lineChartSvg(spec: ChartSpec, width = 820, height = 520): string {
  const m = { left: 70, right: 170, top: 40, bottom: 55 };
  const w = width - m.left - m.right;
  const h = height - m.top - m.bottom;
  const lx0 = Math.log10(spec.xMin);
  const lx1 = Math.log10(spec.xMax);
  const X = (x: number) => m.left + ((Math.log10(x) - lx0) / (lx1 - lx0)) * w;
  const Y = (y: number) => m.top + (1 - (y - spec.yMin) / (spec.yMax - spec.yMin)) * h;
  const f = (v: number) => v.toFixed(1);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${width}" height="${height}" fill="white"/>`);
  out.push(`<text x="${width / 2}" y="22" text-anchor="middle" font-size="15">${esc(spec.title)}</text>`);
  out.push(`<defs><clipPath id="plot"><rect x="${m.left}" y="${m.top}" width="${w}" height="${h}"/></clipPath></defs>`);
  // Grid and ticks: decades on x, round steps on y.
  for (let e = Math.ceil(lx0); e <= Math.floor(lx1); e++) {
    const x = X(10 ** e);
    out.push(`<line x1="${f(x)}" y1="${m.top}" x2="${f(x)}" y2="${m.top + h}" stroke="#ddd"/>`);
    out.push(`<text x="${f(x)}" y="${m.top + h + 18}" text-anchor="middle">1e${e}</text>`);
  }
  const yStep = niceStep((spec.yMax - spec.yMin) / 8);
  for (let y = Math.ceil(spec.yMin / yStep) * yStep; y <= spec.yMax + 1e-9; y += yStep) {
    out.push(`<line x1="${m.left}" y1="${f(Y(y))}" x2="${m.left + w}" y2="${f(Y(y))}" stroke="#ddd"/>`);
    out.push(`<text x="${m.left - 8}" y="${f(Y(y) + 4)}" text-anchor="end">${y.toFixed(2)}</text>`);
  }
  out.push(`<rect x="${m.left}" y="${m.top}" width="${w}" height="${h}" fill="none" stroke="#333"/>`);
  out.push(`<text x="${m.left + w / 2}" y="${height - 15}" text-anchor="middle">${esc(spec.xLabel)}</text>`);
  out.push(`<text transform="translate(18 ${m.top + h / 2}) rotate(-90)" text-anchor="middle">${esc(spec.yLabel)}</text>`);
  // Series, clipped to the plot area; legend on the right.
  spec.series.forEach((s, i) => {
    const d = s.points.map(([x, y], j) => `${j ? 'L' : 'M'}${f(X(x))} ${f(Y(y))}`).join(' ');
    const dash = s.dashed ? ' stroke-dasharray="6 4"' : '';
    out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="${s.width ?? 1.5}"${dash} clip-path="url(#plot)"><title>${esc(s.label)}</title></path>`);
    const ly = m.top + 10 + i * 18;
    const lx = m.left + w + 12;
    out.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 22}" y2="${ly}" stroke="${s.color}" stroke-width="${s.width ?? 1.5}"${dash}/>`);
    out.push(`<text x="${lx + 28}" y="${ly + 4}">${esc(s.label)}</text>`);
  });
  for (const mk of spec.markers) {
    out.push(`<circle cx="${f(X(mk.x))}" cy="${f(Y(mk.y))}" r="4.5" fill="${mk.color}" stroke="black"><title>${esc(mk.label)}</title></circle>`);
    out.push(`<text x="${f(X(mk.x) + 7)}" y="${f(Y(mk.y) - 7)}">${esc(mk.label)}</text>`);
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}

function niceStep(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const k of [1, 2, 2.5, 5, 10]) if (k * p >= raw) return k * p;
  return 10 * p;
}

function logspace(a: number, b: number, n: number): number[] {
  const la = Math.log10(a);
  const lb = Math.log10(b);
  return Array.from({ length: n }, (_, i) => 10 ** (la + ((lb - la) * i) / (n - 1)));
}

const COLORS = ['#1f77b4', '#2ca02c', '#9467bd', '#8c564b', '#17becf', '#7f7f7f', '#bcbd22'];

/** The `plan size` chart: loss against compute for fixed model sizes, the compute-optimal frontier, LLaMA's runs. */
export function sizeChartSvg(points: ModelPoint[], fit: ChinchillaFit = CHINCHILLA, budget?: number): string {
  const cs = [...points.map((p) => p.flops), ...(budget ? [budget] : [])];
  const xMin = 10 ** Math.floor(Math.log10(Math.min(...cs)) - 2);
  const xMax = 10 ** Math.ceil(Math.log10(Math.max(...cs)) + 1);
  const grid = logspace(xMin, xMax, 120);
  const sizes = [1e9, 7e9, 13e9, 33e9, 65e9, 175e9, 500e9];
  const series: Series[] = sizes.map((n, i) => ({
    label: `N = ${n >= 1e12 ? n / 1e12 + 'T' : n / 1e9 + 'B'}`,
    color: COLORS[i % COLORS.length]!,
    points: grid.filter((c) => c / (6 * n) >= 1).map((c) => [c, predictedLoss(n, c / (6 * n), fit)] as [number, number]),
  }));
  const frontier = grid.map((c) => [c, computeOptimal(c, fit).loss] as [number, number]);
  series.push({ label: 'compute-optimal', color: '#d62728', width: 2.5, dashed: true, points: frontier });
  const markers: Marker[] = points.map((p) => ({ label: `${p.name} (${p.loss.toFixed(3)})`, x: p.flops, y: p.loss, color: '#ff7f0e' }));
  if (budget) {
    const o = computeOptimal(budget, fit);
    markers.push({ label: 'your budget, optimal', x: budget, y: o.loss, color: '#d62728' });
  }
  const yMin = Math.floor(Math.min(...frontier.map(([, y]) => y)) * 10) / 10 - 0.05;
  const yMax = Math.ceil((computeOptimal(xMin, fit).loss + 0.3) * 10) / 10;
  return lineChartSvg({
    title: 'Predicted loss vs training compute (Chinchilla approach-3 fit)',
    xLabel: 'training compute, FLOPs (6·N·D)',
    yLabel: 'predicted loss L(N, D)',
    xMin,
    xMax,
    yMin: Math.max(fit.E, yMin),
    yMax,
    series,
    markers,
  });
}
