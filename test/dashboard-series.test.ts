/** What the charts show (web/series.ts) and how numbers read (web/format.ts), shared by the page and `plot`. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CHARTS, alignLines, chartLines, smooth, thin, type RunData, type StepPoint } from '../src/web/series.js';
import { formatValue, formatDuration } from '../src/web/format.js';

const point = (step: number, comm: number): StepPoint => ({ step, loss: 5 - step / 10, lr: 3e-4, grad_norm: 1, tokens_per_s: 1000, mfu: 0.2, ms: { forward: 10, loss: 2, backward: 20, optimizer: 3, total: 35 + comm, comm } });
const run = (name: string, steps: number[], comm = 0, tokensPerStep: number | null = 100): RunData => ({ name, steps: steps.map((s) => point(s, comm)), evals: [{ step: 0, eval_loss: 6 }], tokensPerStep });

test('axis and read-out numbers: a learning rate of 3e-4 is not 0', () => {
  assert.equal(formatValue(3e-4), '3e-4');
  assert.equal(formatValue(1.5e-5), '1.5e-5');
  assert.equal(formatValue(0), '0');
  assert.equal(formatValue(0.012), '0.012');
  assert.equal(formatValue(2.3456), '2.35');
  assert.equal(formatValue(150), '150');
  assert.equal(formatValue(12500), '12.5k');
  assert.equal(formatValue(3.2e9), '3.2G');
  assert.equal(formatValue(NaN), '–');
  assert.equal(formatDuration(3725), '62 min');
  assert.equal(formatDuration(30), '30 s');
});

test('smoothing is the debiased EMA: a constant stays constant, NaN is passed over', () => {
  assert.deepEqual(smooth([2, 2, 2], 0.9).map((v) => +v.toFixed(12)), [2, 2, 2]);
  const s = smooth([1, NaN, 3], 0.5);
  assert.equal(s[0], 1);
  assert.ok(Number.isNaN(s[1]));
  assert.equal(s[2], (0.5 * 0.5 * 1 + 0.5 * 3) / (1 - 0.25)); // (0.25 + 1.5) / 0.75
});

test('two runs on one x axis: columns aligned with nulls, tokens from tokensPerStep, communication only when it matters', () => {
  const loss = CHARTS.find((c) => c.id === 'loss')!;
  const lines = chartLines(loss, [run('a', [1, 2, 3]), run('b', [2, 4], 0, null)], 'tokens');
  assert.deepEqual(lines.map((l) => `${l.runName} ${l.def.label}`), ['a train', 'a train (smoothed)', 'a held-out', 'b train', 'b train (smoothed)', 'b held-out']);
  assert.deepEqual(lines[0].xs, [100, 200, 300]);
  assert.deepEqual(lines[3].xs, [2, 4], 'no tokensPerStep: steps');
  const { x, ys } = alignLines([lines[0], lines[3]]);
  assert.deepEqual(x, [2, 4, 100, 200, 300]);
  assert.deepEqual(ys[1], [4.8, 4.6, null, null, null]);
  assert.deepEqual(alignLines([{ ...lines[0], ys: [1, -1, 0] }], true).ys[0], [1, null, null], 'log axis: no values <= 0');
  const phases = CHARTS.find((c) => c.id === 'phases')!;
  assert.ok(!chartLines(phases, [run('one', [1, 2], 0.01)], 'step').some((l) => l.def.label === 'comm ms'));
  assert.ok(chartLines(phases, [run('mpi', [1, 2], 8)], 'step').some((l) => l.def.label === 'comm ms'));
});

test('thinning keeps the newer half whole and every second of the older', () => {
  assert.deepEqual(thin([1, 2, 3, 4, 5, 6, 7, 8]), [1, 3, 5, 6, 7, 8]);
});
