/** Activation checkpointing: every recompute policy gives bitwise the gradients of 'none', and keeps less. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Llama, RECOMPUTE_POLICIES, activationFloats, headChunkRows, type Recompute } from '../src/model/llama.js';
import { makeConfig } from '../src/model/config.js';
import { createRefBackend } from '../src/kernels/ref.js';
import type { Backend } from '../src/kernels/backend.js';
import { Rng } from '../src/util/rng.js';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, failsWithOneLine } from './helpers/cli.js';
import { paragraphCorpus } from './helpers/data.js';
import { skip as nativeSkip, native } from './helpers/native.js';

const config = makeConfig({ dim: 32, nLayers: 3, nHeads: 4, nKvHeads: 2, vocabSize: 64, multipleOf: 16, maxSeqLen: 24 });

/** Loss and gradients of two accumulated micro-batches under a policy. */
function run(be: Backend, recompute: Recompute, model?: Llama) {
  const m = model ?? new Llama(config, be, { recompute });
  m.recompute = recompute;
  if (!model) m.init(3);
  const rng = new Rng(5);
  const B = 2, T = 12;
  m.ensureGrads().data.fill(0);
  let loss = 0;
  for (let micro = 0; micro < 2; micro++) {
    const tok = Int32Array.from({ length: B * T }, () => rng.int(64));
    const tgt = Int32Array.from({ length: B * T }, () => rng.int(64));
    m.forward(tok, B, T);
    loss += m.loss(tgt, 1 / 48);
    m.backward();
  }
  return { loss, grads: Float64Array.from(m.grads!.data), bytes: m.activationBytes(), model: m };
}

const backends: [string, () => Backend, false | string][] = [['ref f64', () => createRefBackend('f64'), false], ['ref f32', () => createRefBackend('f32'), false], ['native', () => native(), nativeSkip]];

for (const [name, make, skip] of backends) {
  test(`recompute selective and full: bitwise the gradients of none, less activation memory (${name})`, { skip }, () => {
    const be = make();
    const none = run(be, 'none');
    const sel = run(be, 'selective');
    const full = run(be, 'full');
    for (const [p, r] of [['selective', sel], ['full', full]] as const) {
      assert.equal(r.loss, none.loss, `${p} loss`);
      assert.deepEqual(r.grads, none.grads, `${p} gradients`);
    }
    assert.ok(none.bytes > sel.bytes && sel.bytes > full.bytes, `activation bytes none ${none.bytes} > selective ${sel.bytes} > full ${full.bytes}`);
    // the policy may change between steps: the activations are laid out again
    const again = run(be, 'full', none.model);
    assert.deepEqual(again.grads, none.grads);
    assert.equal(again.bytes, full.bytes);
  });
}

test('the recompute policies are none, selective, full', () => {
  assert.deepEqual([...RECOMPUTE_POLICIES], ['none', 'selective', 'full']);
});

test('train --recompute selective|full: the same losses as none, bit for bit; an unknown policy is one line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'llama-ts-recompute-'));
  const text = paragraphCorpus();
  const losses = (policy: string) => {
    const out = join(dir, policy);
    const r = runCli(['train', '--dim', '32', '--layers', '2', '--heads', '4', '--kv-heads', '2', '--multiple-of', '16', '--data', text, '--steps', '4', '--batch', '2', '--seq', '16', '--accum', '2', '--eval-every', '0', '--quiet', '--recompute', policy, '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    return readFileSync(join(out, 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((x) => 'loss' in x).map((x) => x.loss);
  };
  const none = losses('none');
  assert.equal(none.length, 4);
  assert.deepEqual(losses('selective'), none);
  assert.deepEqual(losses('full'), none);
  failsWithOneLine(['train', '--preset', 'mini-260k', '--recompute', 'some', '--out', join(dir, 'bad')], /--recompute must be one of none, selective, full, got 'some'/);
});

test('the memory estimate lays out the same activations the model allocates, under each policy', () => {
  for (const recompute of RECOMPUTE_POLICIES) {
    const m = new Llama(config, createRefBackend('f32'), { recompute });
    m.init(1);
    m.forward(new Int32Array(2 * 12), 2, 12);
    assert.equal(m.activationBytes(), activationFloats(config, 2, 12, { recompute }) * 4, recompute);
  }
});

test('a head of several logits blocks (laid in the backward\'s scratch): each policy and dtype, bitwise the gradients of none (native)', { skip: nativeSkip }, () => {
  // a vocabulary large enough that the head runs in more than one row block
  const big = makeConfig({ dim: 8, nLayers: 2, nHeads: 2, nKvHeads: 1, vocabSize: 131072, multipleOf: 8, maxSeqLen: 40 });
  const B = 2, T = 40;
  assert.ok(headChunkRows(B * T, big.vocabSize) < B * T, 'the head runs in several blocks');
  const be = native();
  const rng = new Rng(9);
  const tok = Int32Array.from({ length: B * T }, () => rng.int(big.vocabSize));
  const tgt = Int32Array.from({ length: B * T }, () => rng.int(big.vocabSize));
  for (const dtype of ['f32', 'bf16'] as const) {
    const results = RECOMPUTE_POLICIES.map((recompute) => {
      const m = new Llama(big, be, { recompute, dtype });
      m.init(4);
      m.ensureGrads().data.fill(0);
      const loss = m.forwardBackward(tok, tgt, B, T, 1 / (B * T));
      return { loss, grads: Float64Array.from(m.grads!.data) };
    });
    for (const r of results.slice(1)) {
      assert.equal(r.loss, results[0].loss, dtype);
      assert.deepEqual(r.grads, results[0].grads, dtype);
    }
  }
});
