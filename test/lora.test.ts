/** LoRA (model/lora.ts): gradients against finite differences in float64, B = 0 is the base model, merge = base + adapter. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRefBackend } from '../src/kernels/ref.js';
import { createBackend, nativeAvailable } from '../src/kernels/index.js';
import { Llama, PROJECTIONS, type Projection } from '../src/model/llama.js';
import { LoraAdapter, parseLoraTargets, loraLayout } from '../src/model/lora.js';
import { makeConfig } from '../src/model/config.js';
import { Rng } from '../src/util/rng.js';
import type { Backend } from '../src/kernels/backend.js';
import { checkTensorGrads } from './helpers/gradcheck.js';

const config = makeConfig({ dim: 16, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 13, multipleOf: 8, maxSeqLen: 8 });

function setup(be: Backend, targets: Projection[], o: { randomB?: boolean; recompute?: 'none' | 'selective' | 'full' } = {}) {
  const model = new Llama(config, be, { recompute: o.recompute });
  model.init(42);
  const rng = new Rng(7);
  for (let i = 0; i < model.params.data.length; i++) model.params.data[i] += rng.normal() * 0.3;
  const lora = new LoraAdapter(config, { rank: 3, alpha: 6, targets }, be);
  lora.init(3);
  if (o.randomB) for (let i = 0; i < lora.params.data.length; i++) lora.params.data[i] += rng.normal() * 0.2;
  const B = 2, T = 5;
  const tokens = Int32Array.from({ length: B * T }, () => rng.int(config.vocabSize));
  const targetIds = Int32Array.from({ length: B * T }, () => rng.int(config.vocabSize));
  targetIds[0] = targetIds[1] = targetIds[6] = -1; // masked (prompt) positions
  return { model, lora, tokens, targets: targetIds, B, T };
}

for (const recompute of ['none', 'selective', 'full'] as const) {
  test(`LoRA gradients (every target, recompute ${recompute}) vs finite differences in float64; base weights get none`, () => {
    const { model, lora, tokens, targets, B, T } = setup(createRefBackend('f64'), [...PROJECTIONS], { randomB: true, recompute });
    lora.attach(model);
    const scale = 1 / 7; // seven unmasked targets
    const lossOf = () => {
      model.forward(tokens, B, T);
      return model.loss(targets, null) * scale;
    };
    const g = lora.ensureGrads();
    g.data.fill(0);
    model.ensureGrads().data.fill(0);
    model.forwardBackward(tokens, targets, B, T, scale);
    const p = lora.params.data as Float64Array;
    const rng = new Rng(11);
    checkTensorGrads(lora.layout.tensors, p, g.data, lossOf, rng);
    // frozen base: no gradient of the matrices, embeddings or head was computed
    const mg = model.grads!;
    for (const t of model.layout.tensors) if (t.decay) assert.ok(mg.view(t).every((x) => x === 0), `${t.name} got a gradient`);
  });
}

test('LoRA gradients equal the gradient of the merged weight chained through ΔW (second implementation)', () => {
  // dL/dB = s·dL/dW·Aᵀ and dL/dA = s·Bᵀ·dL/dW, where dL/dW is the full model's gradient of the merged weight
  const be = createRefBackend('f64');
  const { model, lora, tokens, targets, B, T } = setup(be, ['wq', 'w2'], { randomB: true });
  const merged = new Llama(config, be);
  merged.params.data.set(model.params.data);
  lora.mergeInto(merged);
  merged.ensureGrads().data.fill(0);
  merged.forwardBackward(tokens, targets, B, T, 1);
  lora.attach(model);
  lora.ensureGrads().data.fill(0);
  model.ensureGrads().data.fill(0);
  model.forwardBackward(tokens, targets, B, T, 1);
  const r = 3, s = 2;
  for (const [l, m] of lora.layout.pairs.entries()) {
    for (const p of m.values()) {
      const dW = merged.grads!.view(merged.layout.layers[l][p.target]);
      const A = lora.params.view(p.a), Bm = lora.params.view(p.b);
      const gA = lora.grads!.view(p.a), gB = lora.grads!.view(p.b);
      for (let o = 0; o < p.outDim; o++) for (let k = 0; k < r; k++) {
        let want = 0;
        for (let i = 0; i < p.inDim; i++) want += s * dW[o * p.inDim + i] * A[k * p.inDim + i];
        assert.ok(Math.abs(want - gB[o * r + k]) < 1e-10 * Math.max(1, Math.abs(want)), `dB ${p.target}`);
      }
      for (let k = 0; k < r; k++) for (let i = 0; i < p.inDim; i++) {
        let want = 0;
        for (let o = 0; o < p.outDim; o++) want += s * Bm[o * r + k] * dW[o * p.inDim + i];
        assert.ok(Math.abs(want - gA[k * p.inDim + i]) < 1e-10 * Math.max(1, Math.abs(want)), `dA ${p.target}`);
      }
    }
  }
});

const backends: [string, () => Backend][] = [['ref f32', () => createRefBackend('f32')]];
if (nativeAvailable()) backends.push(['native', () => createBackend('native')]);

for (const [name, mk] of backends) {
  test(`LoRA with B = 0 gives the base model's logits exactly (${name})`, () => {
    const be = mk();
    const { model, lora, tokens, B, T } = setup(be, [...PROJECTIONS]);
    model.forward(tokens, B, T);
    const base = Float32Array.from(model.logits());
    lora.attach(model);
    model.forward(tokens, B, T);
    assert.deepEqual(Array.from(model.logits()), Array.from(base));
  });

  test(`merge(LoRA) gives the logits of base + adapter within float32 rounding (${name})`, () => {
    const be = mk();
    const { model, lora, tokens, B, T } = setup(be, ['wq', 'wk', 'wv', 'wo', 'w1', 'w3'], { randomB: true });
    const merged = new Llama(config, be);
    merged.params.data.set(model.params.data);
    lora.mergeInto(merged);
    lora.attach(model);
    model.forward(tokens, B, T);
    const withAdapter = Float32Array.from(model.logits());
    merged.forward(tokens, B, T);
    const m = merged.logits();
    let maxDiff = 0, maxAbs = 0;
    for (let i = 0; i < m.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(m[i] - withAdapter[i]));
      maxAbs = Math.max(maxAbs, Math.abs(m[i]));
    }
    assert.ok(maxDiff > 0 || maxAbs > 0);
    assert.ok(maxDiff <= 1e-5 * Math.max(1, maxAbs), `max |merged − adapter| ${maxDiff} (logits up to ${maxAbs})`);
    // and the adapter changed something
    model.adapter = null;
    model.forward(tokens, B, T);
    const base = model.logits();
    assert.ok(base.some((x, i) => Math.abs(x - withAdapter[i]) > 1e-3));
  });
}

test('--lora-targets: Meta names, Hugging Face names, all; an unknown target is one line naming it', () => {
  assert.deepEqual(parseLoraTargets('wv,wq'), ['wq', 'wv']);
  assert.deepEqual(parseLoraTargets('q_proj,down_proj'), ['wq', 'w2']);
  assert.deepEqual(parseLoraTargets('all'), [...PROJECTIONS]);
  assert.throws(() => parseLoraTargets('wq,wz'), /^UserError: --lora-targets: unknown LoRA target 'wz' \(known: wq, wk, wv, wo, w1, w2, w3/);
  assert.throws(() => loraLayout(config, { rank: 0, alpha: 1, targets: ['wq'] }), /rank must be a positive integer, got 0/);
  assert.throws(() => loraLayout(config, { rank: -2, alpha: 1, targets: ['wq'] }), /rank must be a positive integer, got -2/);
});
