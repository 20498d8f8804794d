import { test } from 'node:test';
import assert from 'node:assert/strict';
import { argmax, orderByProbability, sampleToken, type SamplingOptions } from '../src/inference/sampler.js';
import { Rng } from '../src/util/rng.js';

/** The sampler as it was before the cutoff search: sort every id by probability, then filter and draw. */
function sampleBySortingAll(logits: Float32Array, o: SamplingOptions, rng: Rng): number {
  const V = logits.length;
  let max = -Infinity;
  for (let i = 0; i < V; i++) if (logits[i] > max) max = logits[i];
  const probs = new Float64Array(V);
  let sum = 0;
  for (let i = 0; i < V; i++) sum += probs[i] = Math.exp((logits[i] - max) / o.temperature);
  let order = Array.from({ length: V }, (_, i) => i).sort((a, b) => probs[b] - probs[a] || a - b);
  if (o.topK > 0 && o.topK < V) order = order.slice(0, o.topK);
  if (o.topP < 1) {
    let acc = 0;
    let cut = order.length;
    for (let i = 0; i < order.length; i++) {
      acc += probs[order[i]] / sum;
      if (acc >= o.topP) {
        cut = i + 1;
        break;
      }
    }
    order = order.slice(0, cut);
  }
  let kept = 0;
  for (const i of order) kept += probs[i];
  let r = rng.next() * kept;
  for (const i of order) {
    r -= probs[i];
    if (r <= 0) return i;
  }
  return order[order.length - 1];
}

test('top-k / top-p sampling draws exactly what sorting the whole vocabulary draws', () => {
  const rng = new Rng(5);
  const V = 3000;
  // peaked (a trained model), flat (random init: every id near the max), ties, and a long flat tail
  const shapes: [string, (i: number) => number][] = [
    ['peaked', () => rng.normal() * 4],
    ['flat', () => rng.normal() * 0.01],
    ['ties', (i) => (i % 7 === 0 ? 2 : 0)],
    ['one-hot tail', (i) => (i === 17 ? 30 : -30 + rng.normal() * 1e-3)],
    ['underflow', (i) => (i < 3 ? 0 : -1e4)],
  ];
  const options: SamplingOptions[] = [
    { temperature: 0.8, topK: 0, topP: 0.95 }, { temperature: 1, topK: 40, topP: 1 }, { temperature: 0.5, topK: 5, topP: 0.9 },
    { temperature: 1.3, topK: 2000, topP: 0.999 }, { temperature: 1, topK: 0, topP: 0.1 }, { temperature: 2, topK: 1, topP: 1 },
  ];
  let draws = 0;
  const distinct = new Set<number>();
  for (const [name, f] of shapes) {
    const logits = Float32Array.from({ length: V }, (_, i) => f(i));
    for (const o of options) {
      for (let s = 0; s < 20; s++) {
        const a = sampleToken(logits, o, new Rng(1000 + s));
        const b = sampleBySortingAll(logits, o, new Rng(1000 + s));
        assert.equal(a, b, `${name} ${JSON.stringify(o)} seed ${1000 + s}`);
        distinct.add(a);
        draws++;
      }
    }
  }
  assert.equal(draws, 5 * 6 * 20);
  assert.ok(distinct.size > 20, 'the draws vary');
});

test('sampling through the backend kernels (float32 softmax) draws what the float64 path draws, and at the right frequencies', async () => {
  const { createRefBackend } = await import('../src/kernels/ref.js');
  const { createBackend } = await import('../src/kernels/index.js');
  const backends = [createRefBackend('f32'), createBackend()];
  const rng = new Rng(9);
  const V = 32000;
  const rows = [Float32Array.from({ length: V }, () => rng.normal() * 3), Float32Array.from({ length: V }, () => rng.normal() * 0.05)];
  const options: SamplingOptions[] = [{ temperature: 1, topK: 0, topP: 1 }, { temperature: 0.7, topK: 0, topP: 0.9 }, { temperature: 1.2, topK: 50, topP: 1 }];
  for (const be of backends) {
    for (const [r, logits] of rows.entries()) {
      // a flat row's near-ties sort differently in float32 than in float64 under top-k/top-p: plain sampling only
      for (const o of r === 0 ? options : options.slice(0, 1)) {
        for (let s = 0; s < 10; s++) {
          const copy = Float32Array.from(logits);
          assert.equal(sampleToken(logits, o, new Rng(s), be), sampleToken(logits, o, new Rng(s)), `${be.name} row ${r} ${JSON.stringify(o)} seed ${s}`);
          assert.deepEqual(logits, copy, 'the logits are left as they were');
        }
      }
    }
  }
  // four ids with probabilities 0.1, 0.2, 0.3, 0.4 at temperature 1: frequencies of 20000 draws within 0.015
  const logits = Float32Array.from([0.1, 0.2, 0.3, 0.4], Math.log);
  const counts = [0, 0, 0, 0];
  const r2 = new Rng(3);
  for (let i = 0; i < 20000; i++) counts[sampleToken(logits, { temperature: 1, topK: 0, topP: 1 }, r2, backends[1])]++;
  counts.forEach((c, i) => assert.ok(Math.abs(c / 20000 - (i + 1) / 10) < 0.015, `id ${i}: ${c / 20000}`));
});

test('degenerate rows still draw an id: NaN logits under top-p, a tiny temperature through the backend', async () => {
  const { createBackend } = await import('../src/kernels/index.js');
  const be = createBackend();
  const nan = Float32Array.from({ length: 100 }, (_, i) => (i === 3 ? NaN : 0));
  const id = sampleToken(nan, { temperature: 1, topK: 0, topP: 0.9 }, new Rng(1));
  assert.ok(Number.isInteger(id) && id >= 0 && id < 100);
  const logits = Float32Array.from({ length: 1000 }, (_, i) => (i === 7 ? 30 : Math.sin(i)));
  for (const t of [1e-6, 0.005]) assert.equal(sampleToken(logits, { temperature: t, topK: 0, topP: 0.95 }, new Rng(2), be), 7, `temperature ${t}`);
});

test('argmax: the first of equal maxima; a NaN past the first element never wins; -Infinity rows give 0', () => {
  assert.equal(argmax(new Float32Array([1, 3, 3, 2])), 1);
  assert.equal(argmax(new Float32Array([1, NaN, 2, NaN])), 2);
  assert.equal(argmax(new Float32Array([-Infinity, -Infinity])), 0);
  assert.equal(argmax([5]), 0);
  const x = new Float32Array(32000).map((_, i) => Math.sin(i * 0.37));
  let want = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[want]) want = i;
  assert.equal(argmax(x), want);
});

test('orderByProbability is the comparison sort (most likely first, ties by id), for float32 and float64 rows', () => {
  const rng = new Rng(21);
  const bySort = (ids: number[], p: ArrayLike<number>) => ids.slice().sort((a, b) => p[b] - p[a] || a - b);
  const rows: [string, Float32Array | Float64Array][] = [];
  for (const V of [10, 200, 5000]) {
    rows.push([`f32 ${V} random`, Float32Array.from({ length: V }, () => Math.exp(rng.normal() * 3))]);
    rows.push([`f32 ${V} ties, zeros, subnormals`, Float32Array.from({ length: V }, (_, i) => [0, 1e-42, 0.5, 0.5, 2 ** -126][i % 5])]);
    rows.push([`f64 ${V} random`, Float64Array.from({ length: V }, () => Math.exp(rng.normal() * 3))]);
    // equal high words, different low words: the low passes must decide
    rows.push([`f64 ${V} close`, Float64Array.from({ length: V }, (_, i) => 1 + (i % 13) * 2 ** -50)]);
    rows.push([`f64 ${V} with NaN and Infinity (comparison sort)`, Float64Array.from({ length: V }, (_, i) => (i === 3 ? NaN : i === 7 ? Infinity : rng.next()))]);
  }
  for (const [name, p] of rows) {
    const all = Array.from({ length: p.length }, (_, i) => i);
    const some = all.filter((i) => i % 3 !== 1);
    for (const ids of [all, some]) {
      const want = bySort(ids, p);
      assert.deepEqual(orderByProbability(ids.slice(), p), want, name);
    }
  }
  // a plain array of numbers goes through the comparison sort
  assert.deepEqual(orderByProbability([0, 1, 2], [0.1, 0.7, 0.7]), [1, 2, 0]);
});

test('argmaxOn: the native kernel picks the index argmax picks (ties, NaNs, signed zeros, every length)', async () => {
  const { createBackend } = await import('../src/kernels/index.js');
  const { argmaxOn } = await import('../src/inference/sampler.js');
  const be = createBackend();
  const rng = new Rng(33);
  const rows: Float32Array[] = [new Float32Array([NaN, 5, 7]), new Float32Array([-0, 0, -0]), new Float32Array([0, -0]), new Float32Array([-Infinity, -Infinity, -Infinity])];
  for (const n of [1, 2, 15, 16, 17, 31, 33, 100, 32000]) {
    rows.push(Float32Array.from({ length: n }, () => rng.normal()));
    rows.push(Float32Array.from({ length: n }, (_, i) => (i % 5 === 3 ? 2 : i % 7 === 1 ? NaN : 1))); // ties at 2, NaNs
    const late = Float32Array.from({ length: n }, () => -rng.next());
    late[n - 1] = 1; // the maximum in the scalar tail
    rows.push(late);
  }
  for (const x of rows) assert.equal(argmaxOn(be, x), argmax(x), `${x.length}: ${Array.from(x.subarray(0, 6))}`);
  assert.equal(argmaxOn(undefined, [1, 3, 2]), 1);
});
