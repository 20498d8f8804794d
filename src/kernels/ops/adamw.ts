/**
 * AdamW (Loshchilov & Hutter 2019) with PyTorch's semantics: decoupled decay p ← p·(1 − lr·wd), then the Adam
 * step with bias correction. Weight decay is chosen per tensor by the caller (matrices only in LLaMA).
 */
import type { AdamWParams, FloatArray } from '../backend.js';

export function adamwRef(p: FloatArray, g: FloatArray, m: FloatArray, v: FloatArray, n: number, h: AdamWParams): void {
  const bc1 = 1 - Math.pow(h.beta1, h.step);
  const bc2 = 1 - Math.pow(h.beta2, h.step);
  const stepSize = h.lr / bc1;
  const sqrtBc2 = Math.sqrt(bc2);
  const decay = 1 - h.lr * h.weightDecay;
  for (let i = 0; i < n; i++) {
    const gi = g[i];
    const mi = h.beta1 * m[i] + (1 - h.beta1) * gi;
    const vi = h.beta2 * v[i] + (1 - h.beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decay - (stepSize * mi) / (Math.sqrt(vi) / sqrtBc2 + h.eps);
  }
}
