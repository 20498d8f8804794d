/** Mixed precision (dtype 'bf16'): gradients against float64 finite differences, recompute policies, native vs ref. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRefBackend } from '../src/kernels/ref.js';
import type { Backend } from '../src/kernels/backend.js';
import { Llama, RECOMPUTE_POLICIES, activationLayoutBytes, type Recompute } from '../src/model/llama.js';
import { makeConfig } from '../src/model/config.js';
import { Rng } from '../src/util/rng.js';
import { UserError } from '../src/util/errors.js';
import { skip as nativeSkip, native } from './helpers/native.js';
import { centralDiff } from './helpers/gradcheck.js';

const config = makeConfig({ dim: 32, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 29, multipleOf: 16, maxSeqLen: 12 });
const B = 2, T = 6;

function data() {
  const rng = new Rng(11);
  const tokens = Int32Array.from({ length: B * T }, () => rng.int(config.vocabSize));
  const targets = Int32Array.from({ length: B * T }, () => rng.int(config.vocabSize));
  targets[4] = -1;
  return { tokens, targets };
}

/** A model with weights large enough that every path carries signal. */
function model(be: Backend, dtype: 'f32' | 'bf16', recompute: Recompute = 'none'): Llama {
  const m = new Llama(config, be, { dtype, recompute });
  m.init(5);
  const rng = new Rng(6);
  for (let i = 0; i < m.params.data.length; i++) m.params.data[i] += rng.normal() * 0.05;
  return m;
}

function grads(m: Llama): Float64Array {
  const { tokens, targets } = data();
  m.ensureGrads().data.fill(0);
  m.forwardBackward(tokens, targets, B, T, 1 / (B * T));
  return Float64Array.from(m.grads!.data);
}

test('bf16 model gradients vs float64 finite differences: each tensor within bf16 tolerance', () => {
  const exact = model(createRefBackend('f64'), 'f32');
  const low = model(createRefBackend('f32'), 'bf16');
  assert.equal(exact.params.data.length, low.params.data.length);
  for (let i = 0; i < exact.params.data.length; i++) low.params.data[i] = exact.params.data[i]; // same float64 → float32 weights
  for (let i = 0; i < exact.params.data.length; i++) exact.params.data[i] = low.params.data[i];
  const g = grads(low);
  const { tokens, targets } = data();
  const p = exact.params.data as Float64Array;
  const lossOf = () => {
    exact.forward(tokens, B, T);
    return exact.loss(targets, null) / (B * T);
  };
  const rng = new Rng(8);
  for (const t of exact.layout.tensors) {
    let num2 = 0, err2 = 0;
    for (let s = 0; s < 8; s++) {
      const i = t.offset + rng.int(t.size);
      const fd = centralDiff(p, i, lossOf);
      num2 += fd * fd;
      err2 += (fd - g[i]) ** 2;
    }
    // bfloat16 keeps 8 mantissa bits (relative rounding 2^-9 per value); a few roundings along each path: 3%
    const rel = Math.sqrt(err2) / Math.max(Math.sqrt(num2), 1e-4);
    assert.ok(rel < 0.03, `${t.name}: bf16 gradient differs from finite differences by ${rel.toFixed(4)} (relative)`);
  }
});

test('bf16: every recompute policy gives bitwise the gradients of none, and keeps fewer bytes', () => {
  const be = createRefBackend('f32');
  const base = model(be, 'bf16', 'none');
  const g0 = grads(base);
  const bytes0 = base.activationBytes();
  assert.equal(bytes0, activationLayoutBytes(config, B, T, { dtype: 'bf16' }));
  for (const r of RECOMPUTE_POLICIES.filter((p) => p !== 'none')) {
    const m = model(be, 'bf16', r);
    assert.deepEqual(grads(m), g0, r);
    assert.ok(m.activationBytes() < bytes0, r);
    assert.equal(m.activationBytes(), activationLayoutBytes(config, B, T, { dtype: 'bf16', recompute: r }));
  }
  // with more than a few layers (the shared float32 set amortised), bf16 keeps fewer bytes than float32 (not with
  // 'full', which keeps only the float32 residual stream: there bf16 adds its shared bfloat16 set)
  const deep = { ...config, nLayers: 8 };
  for (const r of ['none', 'selective'] as const) assert.ok(activationLayoutBytes(deep, B, T, { dtype: 'bf16', recompute: r }) < activationLayoutBytes(deep, B, T, { recompute: r }), r);
});

test('bf16 model: native matches the ref backend (loss and gradients)', { skip: nativeSkip }, () => {
  const r = model(createRefBackend('f32'), 'bf16');
  const n = model(native(), 'bf16');
  const gr = grads(r), gn = grads(n);
  let d = 0, s = 0;
  for (let i = 0; i < gr.length; i++) {
    d = Math.max(d, Math.abs(gr[i] - gn[i]));
    s = Math.max(s, Math.abs(gr[i]));
  }
  // the same bf16 roundings; only float32 summation order differs, which can flip a rounding to bf16 now and then
  assert.ok(d <= 2e-2 * s, `max gradient difference ${d} vs scale ${s}`);
});

test('dtype bf16 on the float64 ref backend: a one-line error naming the backend', () => {
  assert.throws(() => new Llama(config, createRefBackend('f64'), { dtype: 'bf16' }), (e: unknown) => e instanceof UserError && /ref-f64/.test(e.message) && !e.message.includes('\n'));
});
