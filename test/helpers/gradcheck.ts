/** Central finite differences in float64 for checking hand-written backward passes. */
import assert from 'node:assert/strict';
import { Rng } from '../../src/util/rng.js';

export function randn(n: number, rng: Rng, scale = 1): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal() * scale;
  return a;
}

export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/**
 * Checks `analytic` (∂L/∂x as computed by a backward) against (L(x+h) − L(x−h)) / 2h for `samples`
 * randomly chosen elements of x (all of them when x is small).
 */
export function checkGrad(name: string, x: Float64Array, analytic: ArrayLike<number>, loss: () => number, rng: Rng, samples = 40, h = 1e-5, tol = 1e-6): void {
  const idx = x.length <= samples ? Array.from(x.keys()) : Array.from({ length: samples }, () => rng.int(x.length));
  let worst = 0;
  for (const i of idx) {
    const orig = x[i];
    x[i] = orig + h;
    const lp = loss();
    x[i] = orig - h;
    const lm = loss();
    x[i] = orig;
    const num = (lp - lm) / (2 * h);
    const err = Math.abs(num - analytic[i]) / Math.max(1, Math.abs(num), Math.abs(analytic[i]));
    worst = Math.max(worst, err);
    assert.ok(err < tol, `${name}[${i}]: finite difference ${num} vs backward ${analytic[i]} (rel err ${err})`);
  }
  assert.ok(Number.isFinite(worst));
}

export function maxRelErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'length mismatch');
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / Math.max(den, 1e-30);
}

/** (L(p[i] + h) − L(p[i] − h)) / 2h, p[i] restored. */
export function centralDiff(p: Float64Array, i: number, loss: () => number, h = 1e-5): number {
  const orig = p[i];
  p[i] = orig + h;
  const lp = loss();
  p[i] = orig - h;
  const lm = loss();
  p[i] = orig;
  return (lp - lm) / (2 * h);
}

/**
 * For `samples` random elements of every tensor of a flat float64 buffer `p` (a model's or an adapter's parameters),
 * the backward's gradient `g` against central differences of `loss`: relative error below `tol`, the denominator at
 * least `floor` (gradients near zero are compared absolutely).
 */
export function checkTensorGrads(
  tensors: readonly { name: string; offset: number; size: number }[], p: Float64Array, g: ArrayLike<number>, loss: () => number, rng: Rng,
  o: { samples?: number; floor?: number; tol?: number } = {},
): void {
  const { samples = 3, floor = 1e-3, tol = 1e-5 } = o;
  for (const t of tensors) {
    for (let s = 0; s < samples; s++) {
      const i = t.offset + rng.int(t.size);
      const num = centralDiff(p, i, loss);
      const err = Math.abs(num - g[i]) / Math.max(floor, Math.abs(num), Math.abs(g[i]));
      assert.ok(err < tol, `${t.name}[${i - t.offset}]: fd ${num} vs backward ${g[i]}`);
    }
  }
}
