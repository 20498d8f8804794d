/** RMSNorm (Zhang & Sennrich 2019), LLaMA's pre-normalisation: y = x / sqrt(mean(x²) + eps) · w. */
import type { FloatArray } from '../backend.js';

export function rmsnormRef(out: FloatArray, rstd: FloatArray, x: FloatArray, w: FloatArray, rows: number, dim: number, eps: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    let ss = 0;
    for (let d = 0; d < dim; d++) ss += x[o + d] * x[o + d];
    const s = 1 / Math.sqrt(ss / dim + eps);
    rstd[r] = s;
    for (let d = 0; d < dim; d++) out[o + d] = x[o + d] * s * w[d];
  }
}

/**
 * With x̂ = x·rstd and g = dout·w:  dx += rstd·(g − x̂·mean(g·x̂)),  dw += Σ_rows dout·x̂.
 */
export function rmsnormBackwardRef(
  dx: FloatArray, dw: FloatArray, dout: FloatArray, x: FloatArray, w: FloatArray, rstd: FloatArray, rows: number, dim: number,
): void {
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    const s = rstd[r];
    let dot = 0;
    for (let d = 0; d < dim; d++) dot += dout[o + d] * w[d] * x[o + d] * s;
    const mean = dot / dim;
    for (let d = 0; d < dim; d++) {
      const xh = x[o + d] * s;
      dw[d] += dout[o + d] * xh;
      dx[o + d] += s * (dout[o + d] * w[d] - xh * mean);
    }
  }
}
