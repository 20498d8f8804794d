/** Whole-model loss gradient against finite differences in float64, GQA and plain MHA. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRefBackend } from '../src/kernels/ref.js';
import { Llama } from '../src/model/llama.js';
import { makeConfig } from '../src/model/config.js';
import { Rng } from '../src/util/rng.js';
import { checkTensorGrads } from './helpers/gradcheck.js';

function tinyModel(nKvHeads: number): { model: Llama; tokens: Int32Array; targets: Int32Array; B: number; T: number } {
  const config = makeConfig({ dim: 16, nLayers: 2, nHeads: 4, nKvHeads, vocabSize: 13, multipleOf: 8, maxSeqLen: 8 });
  const model = new Llama(config, createRefBackend('f64'));
  model.init(42);
  // larger-than-default weights so every path carries signal; perturb norm gains away from 1
  const rng = new Rng(7);
  for (let i = 0; i < model.params.data.length; i++) model.params.data[i] += rng.normal() * 0.3;
  const B = 2, T = 5;
  const tokens = Int32Array.from({ length: B * T }, () => rng.int(config.vocabSize));
  const targets = Int32Array.from({ length: B * T }, () => rng.int(config.vocabSize));
  targets[3] = -1; // an ignored position
  return { model, tokens, targets, B, T };
}

for (const kv of [4, 2, 1]) {
  test(`full model gradient vs finite differences (heads 4, kv heads ${kv})`, () => {
    const { model, tokens, targets, B, T } = tinyModel(kv);
    const scale = 1 / (B * T);
    const lossOf = () => {
      model.forward(tokens, B, T);
      return model.loss(targets, null) * scale;
    };
    const g = model.ensureGrads();
    g.data.fill(0);
    const l0 = model.forwardBackward(tokens, targets, B, T, scale) * scale;
    assert.ok(Math.abs(l0 - lossOf()) < 1e-12);
    const p = model.params.data as Float64Array;
    const rng = new Rng(kv);
    // every tensor: a few elements each
    checkTensorGrads(model.layout.tensors, p, g.data, lossOf, rng);
  });
}

test('gradients accumulate across calls and ignored targets contribute nothing', () => {
  const { model, tokens, targets, B, T } = tinyModel(2);
  const g = model.ensureGrads();
  g.data.fill(0);
  model.forwardBackward(tokens, targets, B, T, 1);
  const once = Float64Array.from(g.data);
  model.forwardBackward(tokens, targets, B, T, 1);
  for (let i = 0; i < once.length; i += 97) assert.ok(Math.abs(g.data[i] - 2 * once[i]) <= 1e-12 * Math.max(1, Math.abs(once[i])));
  const all = new Int32Array(B * T).fill(-1);
  g.data.fill(0);
  const l = model.forwardBackward(tokens, all, B, T, 1);
  assert.equal(l, 0);
  assert.ok(g.data.every((x) => x === 0));
});

test('backward reports each gradient span once it is final: the spans tile the buffer and never change afterwards', () => {
  const { model, tokens, targets, B, T } = tinyModel(2);
  model.forward(tokens, B, T);
  model.ensureGrads().data.fill(0);
  model.loss(targets, 1 / (B * T));
  const spans: { offset: number; snapshot: Float64Array }[] = [];
  const g = model.grads!.data;
  model.backward((offset, size) => spans.push({ offset, snapshot: Float64Array.from(g.subarray(offset, offset + size)) }));
  const covered = new Uint8Array(g.length);
  for (const s of spans) {
    for (let i = 0; i < s.snapshot.length; i++) covered[s.offset + i]++;
    assert.deepEqual(s.snapshot, Float64Array.from(g.subarray(s.offset, s.offset + s.snapshot.length)), `span at ${s.offset} changed after it was reported`);
  }
  assert.ok(covered.every((c) => c === 1), 'every gradient element is in exactly one span');
  assert.equal(spans.length, model.config.nLayers + 2);
  assert.equal(spans[0].offset, model.layout.norm.offset);
  assert.equal(spans[spans.length - 1].offset, 0);
});
