/** The training-settings table: the checkpoint keys, the defaults, the flags, the checks and --help all come from it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli } from './helpers/cli.js';
import { SETTINGS, HYPER_DEFAULTS, checkHyper, resolveHyper, hyperFromSaved } from '../src/training/settings.js';
import { hyperFromValues, trainOptions } from '../src/cli/train.js';
import { makeConfig } from '../src/model/config.js';
import { BACKEND_NAMES } from '../src/kernels/index.js';

const config = makeConfig({ dim: 16, nLayers: 1, nHeads: 2, nKvHeads: 2, vocabSize: 259, multipleOf: 8, maxSeqLen: 64 });

test('the keys a checkpoint saves (state.json hyper) and their defaults stay as they were', () => {
  assert.deepEqual(HYPER_DEFAULTS, {
    steps: 1000, batch: 8, seq: 256, accum: 1, lr: 1e-3, warmup: 100, minLrRatio: 0.1, clip: 1.0,
    beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, loraRank: 0, loraAlpha: 0, seed: 1337, evalEvery: 100, evalBatches: 8, ckptEvery: 200,
    batchTokens: 0, tokens: 0, // issue 18: 0 = off, which is also what a state.json from before them means
    dtype: 32, // issue 12: float32 (16: bf16 mixed precision), what a state.json from before it means
    // issue 15: loraRank 0 = no LoRA, loraAlpha 0 = the rank (scale 1): also what an older state.json means
  });
  assert.deepEqual(Object.keys(HYPER_DEFAULTS), SETTINGS.map((s) => s.key));
  // an older state.json: same keys; a missing one takes the default, an unknown one is dropped
  const { clip: _clip, ...older } = { ...HYPER_DEFAULTS, steps: 9, warmup: 2 };
  assert.deepEqual(hyperFromSaved({ ...older, retired: 1 }), { ...HYPER_DEFAULTS, steps: 9, warmup: 2 });
});

test('flags parse into settings; unset ones are the defaults fitted to the model and the step count', () => {
  assert.deepEqual(hyperFromValues({}, config), { ...HYPER_DEFAULTS, seq: 64 });
  assert.deepEqual(hyperFromValues({ steps: '50' }, config), { ...HYPER_DEFAULTS, steps: 50, seq: 64, warmup: 50 });
  const h = hyperFromValues({ 'min-lr-ratio': '0', 'weight-decay': '0.05', 'eval-every': '0', 'ckpt-every': '7', lr: '3e-4', seq: '32' }, config);
  assert.deepEqual(h, { ...HYPER_DEFAULTS, minLrRatio: 0, weightDecay: 0.05, evalEvery: 0, ckptEvery: 7, lr: 3e-4, seq: 32 });
  assert.deepEqual(resolveHyper({ steps: 10 }, config, { ...HYPER_DEFAULTS, warmup: 5, seq: 16 }), { ...HYPER_DEFAULTS, steps: 10, warmup: 5, seq: 16 });
  assert.throws(() => hyperFromValues({ steps: 'many' }, config), /--steps expects a number, got 'many'/);
  assert.throws(() => hyperFromValues({ batch: '0' }, config), /--batch expects an integer >= 1/);
  for (const s of SETTINGS) assert.deepEqual(trainOptions[s.flag], { type: 'string' }, s.flag);
});

test('checks name the flag', () => {
  const bad: [Partial<typeof HYPER_DEFAULTS>, RegExp][] = [
    [{ steps: 0 }, /--steps must be a positive integer, got 0$/],
    [{ accum: 1.5 }, /--accum must be a positive integer/],
    [{ seq: 65 }, /--seq 65 exceeds the model's maxSeqLen 64$/],
    [{ lr: 0 }, /--lr must be > 0/],
    [{ warmup: 2000 }, /--warmup must be between 0 and --steps \(1000\), got 2000$/],
    [{ minLrRatio: 1.5 }, /--min-lr-ratio must be in \[0, 1\]/],
    [{ beta1: 1 }, /--beta1 must be in \[0, 1\)/],
    [{ beta2: -0.1 }, /--beta2 must be in \[0, 1\)/],
    [{ eps: 0 }, /--eps must be > 0/],
    [{ evalEvery: -1 }, /--eval-every must be a non-negative integer/],
    [{ clip: NaN }, /--clip must be a number/],
  ];
  for (const [h, re] of bad) assert.throws(() => checkHyper({ ...HYPER_DEFAULTS, seq: 64, ...h }, config), re);
  checkHyper({ ...HYPER_DEFAULTS, seq: 64 }, config);
});

test('train --help lists every setting with its default, and every backend', () => {
  const r = runCli(['train', '--help']);
  assert.equal(r.code, 0, r.stderr);
  for (const s of SETTINGS) assert.match(r.stdout, new RegExp(`--${s.flag} ${s.arg} .*\\(default ${(s.defaultDoc ?? String(s.default)).replace(/[.+]/g, '\\$&')}\\)`), s.flag);
  for (const f of ['data', 'tokenizer', 'out', 'stop-at', 'resume', 'backend', 'quiet', 'preset', 'config']) assert.match(r.stdout, new RegExp(`--${f}\\b`));
  for (const b of BACKEND_NAMES) assert.match(r.stdout, new RegExp(`\\b${b}\\b`));
});
