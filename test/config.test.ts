import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getPreset, paramCount, ffnHiddenDim, makeConfig, configFromJson, trainFlopsPerToken } from '../src/model/config.js';
import { UserError } from '../src/util/errors.js';

test('paper parameter counts are exact', () => {
  assert.equal(paramCount(getPreset('llama-7b')), 6_738_415_616);
  assert.equal(paramCount(getPreset('llama-13b')), 13_015_864_320);
  assert.equal(paramCount(getPreset('llama-33b')), 32_528_943_616);
  assert.equal(paramCount(getPreset('llama-65b')), 65_285_660_672);
});

test('SwiGLU hidden sizes follow Meta and llama2.c', () => {
  assert.equal(ffnHiddenDim(getPreset('llama-7b')), 11008);
  assert.equal(ffnHiddenDim(getPreset('llama-65b')), 22016);
  assert.equal(ffnHiddenDim(getPreset('mini-15m')), 768);
  assert.equal(ffnHiddenDim(getPreset('mini-42m')), 1376);
  assert.equal(ffnHiddenDim(getPreset('mini-260k')), 172);
  assert.equal(ffnHiddenDim(makeConfig({ dim: 8192, nHeads: 64, nKvHeads: 8, multipleOf: 4096, ffnDimMultiplier: 1.3 })), 28672);
});

test('small presets have the documented shapes', () => {
  const m = getPreset('mini-260k');
  assert.deepEqual([m.dim, m.nLayers, m.nHeads, m.nKvHeads, m.vocabSize, m.maxSeqLen], [64, 5, 8, 4, 512, 512]);
  const s = getPreset('mini-15m');
  assert.deepEqual([s.dim, s.nLayers, s.nHeads, s.nKvHeads, s.vocabSize, s.maxSeqLen], [288, 6, 6, 6, 32000, 256]);
  const l = getPreset('mini-42m');
  assert.deepEqual([l.dim, l.nLayers, l.nHeads, l.nKvHeads, l.vocabSize, l.maxSeqLen], [512, 8, 8, 8, 32000, 1024]);
});

test('impossible configs and unknown presets are user errors', () => {
  assert.throws(() => getPreset('llama-8b'), (e) => e instanceof UserError && /unknown preset 'llama-8b'/.test(e.message));
  assert.throws(() => makeConfig({ dim: 100, nHeads: 3 }), (e) => e instanceof UserError && /not divisible by nHeads/.test(e.message));
  assert.throws(() => makeConfig({ dim: 64, nHeads: 8, nKvHeads: 3 }), (e) => e instanceof UserError && /nKvHeads/.test(e.message));
  assert.throws(() => makeConfig({ dim: 0 }), UserError);
  assert.throws(() => configFromJson({ dim: 64, bogus: 1 }), /unknown config key 'bogus'/);
});

test('overriding heads keeps plain MHA plain and GQA grouped', () => {
  assert.equal(makeConfig('mini-15m', { nHeads: 4 }).nKvHeads, 4);
  assert.equal(makeConfig('mini-260k', { nHeads: 16 }).nKvHeads, 4);
  const meta = configFromJson({ dim: 64, n_layers: 2, n_heads: 4, n_kv_heads: 2, vocab_size: 100, multiple_of: 16, norm_eps: 1e-5 });
  assert.equal(meta.nKvHeads, 2);
  assert.equal(meta.nLayers, 2);
});

test('training FLOPs per token: 6N + 12·L·dim·T', () => {
  const c = getPreset('llama-7b');
  const n = paramCount(c) - c.vocabSize * c.dim;
  assert.equal(trainFlopsPerToken(c, 2048), 6 * n + 12 * 32 * 4096 * 2048);
});
