import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sampleToken, type SamplingOptions } from '../src/inference/sampler.js';
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
