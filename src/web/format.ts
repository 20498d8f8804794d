/**
 * Number formatting shared by the dashboard page, its charts and `llama-ts plot`: short, and exact enough to read a
 * learning rate of 3e-4 (uPlot's default ticks print it as "0").
 */

/** A value in at most ~4 significant characters: 3e-4, 0.012, 2.35, 1.2k, 3.4M. */
export function formatValue(v: number | null | undefined): string {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  if (!Number.isFinite(v)) return v > 0 ? '∞' : '-∞';
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e4) {
    const units: [number, string][] = [[1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k']];
    for (const [u, s] of units) if (a >= u) return `${trim((v / u).toPrecision(3))}${s}`;
  }
  if (a < 1e-2) {
    const [m, e] = v.toExponential(2).split('e');
    return `${trim(m)}e${Number(e)}`;
  }
  return trim(a >= 100 ? v.toFixed(0) : v.toPrecision(3));
}

function trim(s: string): string {
  return s.includes('.') && !s.includes('e') ? s.replace(/\.?0+$/, '') : s;
}

/** A duration in seconds as 45 s, 12 min, 3.5 h. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '–';
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}
