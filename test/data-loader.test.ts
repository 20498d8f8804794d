import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { MixtureSampler, MixtureSource, mixtureSpec, openTrainingData, readManifest, manifestShares } from '../src/data/loader.js';
import { RankSlice, TokenStreamSource, type BatchSource, type Batch } from '../src/data/source.js';
import { ByteTokenizer } from '../src/tokenizer/bytes.js';
import { UserError } from '../src/util/errors.js';
import { train, HYPER_DEFAULTS, type Hyper } from '../src/training/trainer.js';
import { createRefBackend } from '../src/kernels/ref.js';
import { makeConfig } from '../src/model/config.js';
import { makePrepared, tmp } from './helpers/data.js';

const prepared = makePrepared([
  { name: 'big', docs: 120, weight: 0.6 },
  { name: 'mid', docs: 60, weight: 0.3 },
  { name: 'small', docs: 30, weight: 0.1 },
]);

function draw(src: BatchSource, n: number, batch: number, seq: number): Batch[] {
  return Array.from({ length: n }, () => src.next(batch, seq));
}

function same(a: Batch[], b: Batch[], what: string): void {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) {
    assert.deepEqual(a[i].tokens, b[i].tokens, `${what}: batch ${i} tokens`);
    assert.deepEqual(a[i].targets, b[i].targets, `${what}: batch ${i} targets`);
  }
}

test('prefetch never changes the batches, also across a change of batch shape', async () => {
  const dir = await prepared;
  const spec = mixtureSpec(dir, readManifest(dir), 'train');
  const sync = new MixtureSource(spec, 11, { prefetch: 0 });
  const pre = new MixtureSource(spec, 11, { prefetch: 3 });
  same(draw(pre, 20, 4, 32), draw(sync, 20, 4, 32), 'shape 4x32');
  same(draw(pre, 5, 2, 8), draw(sync, 5, 2, 8), 'shape 2x8');
  same(draw(pre, 5, 4, 32), draw(sync, 5, 4, 32), 'back to 4x32');
  assert.deepEqual(pre.state(), sync.state());
  pre.close();
  // targets are the inputs shifted by one
  const b = sync.next(2, 16);
  assert.deepEqual(b.tokens.subarray(1, 16), b.targets.subarray(0, 15));
});

test('resume mid-epoch continues with exactly the next batch (with and without prefetch)', async () => {
  const dir = await prepared;
  const spec = mixtureSpec(dir, readManifest(dir), 'train');
  const straight = draw(new MixtureSource(spec, 3, { prefetch: 0 }), 30, 4, 24);
  for (const [p1, p2] of [[0, 0], [2, 2], [4, 0], [0, 3]]) {
    const first = new MixtureSource(spec, 3, { prefetch: p1 });
    const a = draw(first, 11, 4, 24);
    // the worker has read ahead by now; the saved position must still be batch 11
    await new Promise((r) => setTimeout(r, 20));
    const saved = JSON.parse(JSON.stringify(first.state()));
    assert.equal(saved.drawn, 11);
    first.close();
    const second = new MixtureSource(spec, 999, { prefetch: p2 });
    second.restore(saved);
    const b = draw(second, 19, 4, 24);
    second.close();
    same([...a, ...b], straight, `prefetch ${p1} -> ${p2}`);
  }
  const other = await makePrepared([{ name: 'big', docs: 50, weight: 1 }]);
  const foreign = new MixtureSource(mixtureSpec(other, readManifest(other), 'train'), 3);
  assert.throws(() => foreign.restore(new MixtureSource(spec, 3).state()), (e) => e instanceof UserError && /different prepared-data mixture/.test(e.message));
  assert.throws(() => foreign.restore({ kind: 'stream' }), /not a prepared-data \(mixture\) position/);
});

test('source proportions over many batches match the recipe within statistical tolerance', async () => {
  const dir = await prepared;
  const m = readManifest(dir);
  const shares = manifestShares(m);
  assert.deepEqual([...shares.values()].map((x) => Number(x.toFixed(6))), [0.6, 0.3, 0.1]);
  const sampler = new MixtureSampler(mixtureSpec(dir, m, 'train'), { rng: 17 });
  const B = 16;
  const batches = 1000;
  const counts = [0, 0, 0];
  const buf = new Int32Array(B * 9);
  const src = new Int32Array(B);
  for (let i = 0; i < batches; i++) {
    sampler.fill(B, 8, buf, src);
    for (const s of src) counts[s]++;
  }
  const n = B * batches;
  [0.6, 0.3, 0.1].forEach((p, i) => {
    const sd = Math.sqrt(n * p * (1 - p));
    assert.ok(Math.abs(counts[i] - n * p) < 4 * sd, `source ${i}: ${counts[i]} of ${n}, expected ${n * p} ± ${4 * sd}`);
  });
  // and the rows really come from those sources: every window decodes to text of its source
  const tok = new ByteTokenizer();
  const names = ['big', 'mid', 'small'];
  const big = new MixtureSampler(mixtureSpec(dir, m, 'train'), { rng: 5 });
  const wide = new Int32Array(64 * 201);
  const wsrc = new Int32Array(64);
  big.fill(64, 200, wide, wsrc);
  for (let b = 0; b < 64; b++) {
    const text = tok.decode(wide.subarray(b * 201, (b + 1) * 201));
    for (const mm of text.matchAll(/(big|mid|small) document/g)) assert.equal(mm[1], names[wsrc[b]]);
  }
});

test('held-out split: fresh sources repeat the same windows, drawn only from held-out documents', async () => {
  const dir = await prepared;
  const data = openTrainingData(dir, new ByteTokenizer(), 1, 64);
  const tok = new ByteTokenizer();
  const h1 = draw(data.heldOut(), 3, 8, 64);
  const h2 = draw(data.heldOut(), 3, 8, 64);
  same(h1, h2, 'held-out');
  let seen = 0;
  for (const b of h1) {
    for (const mm of tok.decode(b.tokens).matchAll(/document (\d+)\./g)) {
      seen++;
      assert.equal(Number(mm[1]) % 10, 9, 'held-out windows come from every 10th document');
    }
  }
  assert.ok(seen > 0);
  for (const b of draw(data.train, 10, 8, 64)) {
    for (const mm of tok.decode(b.tokens).matchAll(/document (\d+)\./g)) assert.notEqual(Number(mm[1]) % 10, 9, 'training never sees held-out documents');
  }
  (data.train as MixtureSource).close();
  assert.ok(data.trainTokens > 10 * data.heldOutTokens * 0.5);
});

test('trainer: stop + resume on prepared data gives the losses of a straight run', async () => {
  const dir = await prepared;
  const config = makeConfig({ dim: 16, nLayers: 1, nHeads: 2, nKvHeads: 2, vocabSize: 259, multipleOf: 8, maxSeqLen: 16 });
  const hyper: Hyper = { ...HYPER_DEFAULTS, steps: 6, batch: 2, seq: 16, accum: 2, lr: 5e-3, warmup: 1, evalEvery: 3, evalBatches: 1, ckptEvery: 0, seed: 5 };
  const run = (runDir: string, extra: { resume?: boolean; stopAt?: number } = {}) => {
    const data = openTrainingData(dir, new ByteTokenizer(), hyper.seed, hyper.seq);
    return train({ config, backend: createRefBackend('f32'), hyper, runDir, train: data.train, heldOut: data.heldOut, tokenizer: { kind: 'bytes' }, quiet: true, ...extra })
      .finally(() => (data.train as MixtureSource).close());
  };
  const straight = await run(join(tmp(), 'a'));
  const runB = join(tmp(), 'b');
  const first = await run(runB, { stopAt: 2 });
  const second = await run(runB, { resume: true });
  assert.deepEqual([...first.losses, ...second.losses], straight.losses);
});

test('openTrainingData still takes the plain-text paths', () => {
  const d = openTrainingData('brown', new ByteTokenizer(), 1, 32);
  assert.ok(d.trainTokens > 1e6);
  assert.equal(d.train.next(2, 32).tokens.length, 64);
});

test('RankSlice: ranks take disjoint interleaved batches, together those of one source, with its state', () => {
  const stream = Int32Array.from({ length: 500 }, (_, i) => i);
  const one = new TokenStreamSource(stream, 4);
  const ranks = [0, 1, 2].map((r) => new RankSlice(new TokenStreamSource(stream, 4), r, 3));
  for (let k = 0; k < 4; k++) {
    for (const rs of ranks) assert.deepEqual(rs.next(2, 8), one.next(2, 8), `batch ${k} rank ${rs.rank}`);
    for (const rs of ranks) assert.deepEqual(rs.state(), one.state());
  }
  assert.throws(() => new RankSlice(one, 3, 3), RangeError);
});
