/** The tensor-parallel sharding plan of the parameter layout: shapes, gather/scatter by name, and the algebra it relies on. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeConfig, ffnHiddenDim, headDim, type LlamaConfig } from '../src/model/config.js';
import { paramLayout, shardOf, placeShard, FlatTensors, initParams, type TensorSpec } from '../src/model/params.js';
import { createRefBackend } from '../src/kernels/ref.js';
import { Rng } from '../src/util/rng.js';
import { UserError } from '../src/util/errors.js';

const config = makeConfig({ dim: 24, nLayers: 2, nHeads: 6, nKvHeads: 2, vocabSize: 36, multipleOf: 12, maxSeqLen: 16 });
const be = createRefBackend('f64');

test('one rank: every shard is the whole tensor, offsets as before', () => {
  const l = paramLayout(config);
  let offset = 0;
  for (const t of l.tensors) {
    assert.deepEqual(t.shape, t.fullShape, t.name);
    assert.equal(t.offset, offset);
    offset += t.size;
  }
  assert.equal(l.total, offset);
  const splits = Object.fromEntries(l.tensors.filter((t) => t.name.startsWith('layers.0.') || !t.name.startsWith('layers.')).map((t) => [t.name.replace('layers.0.', ''), t.split]));
  assert.deepEqual(splits, {
    'tok_embeddings.weight': 'vocab', 'attention_norm.weight': 'replicated', 'attention.wq.weight': 'column', 'attention.wk.weight': 'column',
    'attention.wv.weight': 'column', 'attention.wo.weight': 'row', 'ffn_norm.weight': 'replicated', 'feed_forward.w1.weight': 'column',
    'feed_forward.w2.weight': 'row', 'feed_forward.w3.weight': 'column', 'norm.weight': 'replicated', 'output.weight': 'vocab',
  });
});

test('tp = 2: shard shapes, sizes, and scatter → gather gives back every tensor', () => {
  const full = new FlatTensors(paramLayout(config), be);
  initParams(full, config, new Rng(5));
  const tp = 2;
  const ranks = Array.from({ length: tp }, (_, rank) => new FlatTensors(paramLayout(config, { size: tp, rank }), be));
  for (const t of full.layout.tensors) {
    const shards = ranks.map((r) => r.layout.byName.get(t.name) as TensorSpec);
    const replicated = t.split === 'replicated';
    for (const s of shards) assert.equal(s.size, replicated ? t.size : t.size / tp, t.name);
    if (t.split === 'row') assert.deepEqual(shards[0].shape, [t.fullShape[0], t.fullShape[1] / tp]);
    if (t.split === 'column' || t.split === 'vocab') assert.deepEqual(shards[0].shape, [t.fullShape[0] / tp, t.fullShape[1]]);
    const back = new Float64Array(t.size);
    ranks.forEach((r, rank) => {
      const s = shards[rank];
      shardOf(s, full.view(t), r.view(s), { size: tp, rank });
      placeShard(s, r.view(s), back, { size: tp, rank });
    });
    assert.deepEqual(back, full.view(t), t.name);
  }
  // a row split takes columns: rank 1's first row of wo is columns [qw/2, qw) of the full first row
  const wo = full.layout.layers[0].wo;
  const qw = config.nHeads * headDim(config);
  assert.deepEqual(Array.from(ranks[1].get(wo.name).subarray(0, qw / 2)), Array.from(full.view(wo).subarray(qw / 2, qw)));
});

test('the plan computes the same function: column-split W1/W3 then row-split W2 summed over ranks equals the full SwiGLU', () => {
  for (const tp of [2, 3]) ffnAgrees(makeConfig({ ...config, nKvHeads: tp }), tp);
});

function ffnAgrees(config: LlamaConfig, tp: number): void {
  const full = new FlatTensors(paramLayout(config), be);
  initParams(full, config, new Rng(8), 0.3);
  const D = config.dim;
  const F = ffnHiddenDim(config);
  const N = 5;
  const x = be.alloc(N * D);
  const rng = new Rng(2);
  for (let i = 0; i < x.length; i++) x[i] = rng.normal();
  const ffn = (p: FlatTensors, f: number, out: Float64Array | Float32Array) => {
    const w = p.layout.layers[0];
    const h1 = be.alloc(N * f), h3 = be.alloc(N * f), g = be.alloc(N * f);
    be.matmul(h1, x, p.view(w.w1), N, D, f);
    be.matmul(h3, x, p.view(w.w3), N, D, f);
    be.swiglu(g, h1, h3, N * f);
    be.matmul(out, g, p.view(w.w2), N, f, D, true);
  };
  const want = be.alloc(N * D);
  ffn(full, F, want);
  const sum = be.alloc(N * D); // the all-reduce of the row-parallel partial outputs
  for (let rank = 0; rank < tp; rank++) {
    const p = new FlatTensors(paramLayout(config, { size: tp, rank }), be);
    for (const t of p.layout.tensors) shardOf(t, full.get(t.name), p.view(t), { size: tp, rank });
    ffn(p, F / tp, sum);
  }
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(sum[i] - want[i]) <= 1e-12 * (1 + Math.abs(want[i])), `tp ${tp} element ${i}`);
}

test('a group that does not divide the heads is refused with one line', () => {
  assert.throws(() => paramLayout(config, { size: 4, rank: 0 }), (e: Error) => e instanceof UserError && /6 attention heads to divide by 4/.test(e.message));
  assert.throws(() => paramLayout(config, { size: 2, rank: 2 }), RangeError);
});
