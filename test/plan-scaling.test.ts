import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getPreset, paramCount } from '../src/model/config.js';
import { UserError } from '../src/util/errors.js';
import {
  CHINCHILLA,
  LLAMA_RUNS,
  comparePoint,
  computeOptimal,
  computeOptimalForLoss,
  computeOptimalNumeric,
  inferenceOptimal,
  predictedLoss,
  tokensForLoss,
} from '../src/plan/scaling.js';
import { sizeChartSvg } from '../src/plan/svg.js';

// Hoffmann et al. 2022, approach 3, as published — written out here, not imported, so the tests check the library.
const E = 1.69;
const A = 406.4;
const B = 410.7;
const ALPHA = 0.34;
const BETA = 0.28;
const loss = (n: number, d: number) => E + A / n ** ALPHA + B / d ** BETA;
const GOPHER_BUDGET = 5.76e23;

const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

/** Independent minimiser: coarse log grid over N, then repeated zooming; no golden section, no closed form. */
function bruteForceOptimum(c: number): { n: number; d: number } {
  let lo = Math.log(1e6);
  let hi = Math.log(1e13);
  for (let round = 0; round < 12; round++) {
    let best = lo;
    let bestL = Infinity;
    const steps = 200;
    for (let i = 0; i <= steps; i++) {
      const x = lo + ((hi - lo) * i) / steps;
      const n = Math.exp(x);
      const l = loss(n, c / (6 * n));
      if (l < bestL) {
        bestL = l;
        best = x;
      }
    }
    const w = (hi - lo) / steps;
    lo = best - 2 * w;
    hi = best + 2 * w;
  }
  const n = Math.exp((lo + hi) / 2);
  return { n, d: c / (6 * n) };
}

test('published constants are the defaults', () => {
  assert.deepEqual({ ...CHINCHILLA }, { E, A, B, alpha: ALPHA, beta: BETA });
});

test('closed-form compute-optimal allocation agrees with numerical minimisation at 5.76e23 FLOPs', () => {
  const closed = computeOptimal(GOPHER_BUDGET);
  const brute = bruteForceOptimum(GOPHER_BUDGET);
  const golden = computeOptimalNumeric(GOPHER_BUDGET);
  assert.ok(rel(closed.params, brute.n) < 1e-5, `closed ${closed.params} vs brute ${brute.n}`);
  assert.ok(rel(closed.tokens, brute.d) < 1e-5);
  assert.ok(rel(closed.params, golden.params) < 1e-6);
  assert.ok(rel(6 * closed.params * closed.tokens, GOPHER_BUDGET) < 1e-12, 'allocation spends exactly the budget');
  assert.ok(Math.abs(closed.loss - loss(brute.n, brute.d)) < 1e-10);
  // First-order condition of the Lagrangian: α·A·N^-α = β·B·D^-β.
  assert.ok(rel(ALPHA * A * closed.params ** -ALPHA, BETA * B * closed.tokens ** -BETA) < 1e-9);
  // Neighbouring allocations on the same budget are worse.
  for (const f of [0.9, 1.1]) assert.ok(loss(closed.params * f, closed.tokens / f) > closed.loss);
});

test('closed form holds across budgets and scales as C^(β/(α+β)) and C^(α/(α+β))', () => {
  for (const c of [1e20, 1e22, 3e24, 1e26]) {
    const closed = computeOptimal(c);
    const brute = bruteForceOptimum(c);
    assert.ok(rel(closed.params, brute.n) < 1e-5, `at C=${c}`);
  }
  const a = computeOptimal(1e22);
  const b = computeOptimal(1e24);
  assert.ok(Math.abs(Math.log(b.params / a.params) / Math.log(100) - BETA / (ALPHA + BETA)) < 1e-12);
  assert.ok(Math.abs(Math.log(b.tokens / a.tokens) / Math.log(100) - ALPHA / (ALPHA + BETA)) < 1e-12);
});

test("predicted losses of LLaMA's runs (7B/1T, 13B/1T, 33B/1.4T, 65B/1.4T)", () => {
  const runs: [string, number][] = [['llama-7b', 1.0e12], ['llama-13b', 1.0e12], ['llama-33b', 1.4e12], ['llama-65b', 1.4e12]];
  assert.deepEqual(LLAMA_RUNS.map((r) => [r.preset, r.tokens]), runs);
  const losses: number[] = [];
  for (const [name, d] of runs) {
    const n = paramCount(getPreset(name));
    const expected = E + A / n ** ALPHA + B / d ** BETA;
    const p = comparePoint(name, n, d);
    assert.ok(Math.abs(p.loss - expected) < 1e-12, `${name}: ${p.loss} vs ${expected}`);
    assert.equal(p.flops, 6 * n * d);
    losses.push(p.loss);
  }
  // Bigger models trained on at least as many tokens predict strictly lower loss, all a little above 1.9.
  for (let i = 1; i < losses.length; i++) assert.ok(losses[i]! < losses[i - 1]!);
  assert.ok(losses.every((l) => l > 1.9 && l < 2.1), losses.join(','));
});

test('equal-loss compute-optimal model: same loss, least compute, inference saving and break-even', () => {
  for (const r of LLAMA_RUNS) {
    const n = paramCount(getPreset(r.preset));
    const p = comparePoint(r.preset, n, r.tokens);
    const opt = p.equalLossOptimal;
    assert.ok(Math.abs(loss(opt.params, opt.tokens) - p.loss) < 1e-9, 'same predicted loss');
    assert.ok(rel(computeOptimal(opt.flops).params, opt.params) < 1e-9, 'it is compute-optimal for its budget');
    assert.ok(opt.flops <= p.flops * (1 + 1e-12), 'never more compute than the chosen run');
    assert.ok(Math.abs(p.inferenceSaving - (1 - n / opt.params)) < 1e-12);
    if (p.breakEvenTokens !== null) {
      // After break-even tokens, train + serve costs the same for both models.
      const total = (N: number, D: number) => 6 * N * D + 2 * N * p.breakEvenTokens!;
      assert.ok(rel(total(n, r.tokens), total(opt.params, opt.tokens)) < 1e-9);
    }
  }
  // Under approach 3 LLaMA-7B is smaller than the equal-loss optimum (saves serving), 65B larger (costs more).
  const p7 = comparePoint('7b', paramCount(getPreset('llama-7b')), 1e12);
  const p65 = comparePoint('65b', paramCount(getPreset('llama-65b')), 1.4e12);
  assert.ok(p7.inferenceSaving > 0.2 && p7.breakEvenTokens !== null);
  assert.ok(p65.inferenceSaving < 0 && p65.breakEvenTokens === null);
});

test('inference-aware sizing: same loss, smaller model, minimal total cost', () => {
  const target = computeOptimal(GOPHER_BUDGET).loss;
  const none = inferenceOptimal(target, 0);
  assert.ok(rel(none.params, computeOptimal(GOPHER_BUDGET).params) < 1e-9, 'no serving: compute-optimal');
  let prevN = none.params;
  for (const served of [1e11, 1e12, 1e13, 1e14]) {
    const r = inferenceOptimal(target, served);
    assert.ok(Math.abs(loss(r.params, r.tokens) - target) < 1e-9, 'reaches the same loss');
    assert.ok(r.params < prevN, 'more serving, smaller model');
    prevN = r.params;
    const cost = (n: number) => 6 * n * tokensForLoss(n, target) + 2 * n * served;
    assert.ok(rel(r.totalFlops, cost(r.params)) < 1e-12);
    for (const f of [0.98, 1.02]) assert.ok(cost(r.params * f) > r.totalFlops, `cost at ${f}×N is higher`);
    const chin = computeOptimalForLoss(target);
    assert.ok(r.totalFlops < 6 * chin.params * chin.tokens + 2 * chin.params * served);
  }
});

test('constants are overridable: symmetric fit splits compute evenly', () => {
  const fit = { E: 1, A: 100, B: 100, alpha: 0.3, beta: 0.3 };
  const r = computeOptimal(6e20, fit);
  assert.ok(rel(r.params, 1e10) < 1e-12 && rel(r.tokens, 1e10) < 1e-12);
  assert.ok(Math.abs(r.loss - predictedLoss(1e10, 1e10, fit)) < 1e-12);
});

test('zero or negative budgets and unreachable losses are user errors', () => {
  assert.throws(() => computeOptimal(0), UserError);
  assert.throws(() => computeOptimal(-1e20), UserError);
  assert.throws(() => computeOptimalNumeric(Number.NaN), UserError);
  assert.throws(() => computeOptimalForLoss(1.5), (e) => e instanceof UserError && /irreducible/.test(e.message));
  assert.throws(() => inferenceOptimal(2, -1), UserError);
});

test('size chart: frontier, model-size curves and the four LLaMA points', () => {
  const pts = LLAMA_RUNS.map((r) => comparePoint(r.preset, paramCount(getPreset(r.preset)), r.tokens));
  const svg = sizeChartSvg(pts, CHINCHILLA, GOPHER_BUDGET);
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.match(svg, /<\/svg>\n$/);
  assert.equal((svg.match(/<path /g) ?? []).length, 8, 'seven model sizes and the frontier');
  assert.equal((svg.match(/<circle /g) ?? []).length, 5, 'four LLaMA runs and the budget');
  for (const r of LLAMA_RUNS) assert.ok(svg.includes(r.preset));
  assert.ok(svg.includes('compute-optimal'));
  assert.ok(!/NaN|Infinity/.test(svg));
});
