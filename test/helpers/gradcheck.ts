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
