/**
 * Issue 18: each preset carries its training recipe (the paper's Table 2 for llama-*; our sweep for the small ones),
 * `train --preset` starts from it with every value overridable by its flag, `info` and `plan cluster` use it; and a
 * run the machine cannot hold is refused up front with one line (the memory limit injected via LLAMA_TS_MEMORY_LIMIT).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli, failsWithOneLine } from './helpers/cli.js';
import { RECIPES, getRecipe } from '../src/model/recipe.js';
import { PRESETS, makeConfig } from '../src/model/config.js';
import { HYPER_DEFAULTS, recipeHyper, resolveHyper, checkHyper } from '../src/training/settings.js';
import { hyperFromValues, baseHyper } from '../src/cli/train.js';
import { Llama, activationFloats } from '../src/model/llama.js';
import { trainingMemory, inferenceMemory } from '../src/model/memory.js';
import { availableMemory } from '../src/util/memory.js';
import { createBackend } from '../src/kernels/index.js';

const HF_TINY = fileURLToPath(new URL('../../test/fixtures/hf-tiny', import.meta.url));

test('every preset has a recipe; the paper presets carry Table 2', () => {
  assert.deepEqual(Object.keys(RECIPES).sort(), Object.keys(PRESETS).sort());
  for (const p of ['llama-7b', 'llama-13b', 'llama-33b', 'llama-65b']) {
    const r = getRecipe(p)!;
    assert.equal(r.lr, p === 'llama-7b' || p === 'llama-13b' ? 3.0e-4 : 1.5e-4, p);
    assert.equal(r.tokens, p === 'llama-7b' || p === 'llama-13b' ? 1.0e12 : 1.4e12, p);
    assert.deepEqual([r.batchTokens, r.warmup, r.seq, r.beta1, r.beta2, r.weightDecay, r.clip, r.minLrRatio], [4 * 2 ** 20, 2000, 2048, 0.9, 0.95, 0.1, 1.0, 0.1], p);
  }
});

test('info --preset prints the recipe beside the shapes', () => {
  const i65 = runCli(['info', '--preset', 'llama-65b']);
  assert.equal(i65.code, 0, i65.stderr);
  const line = i65.stdout.split('\n').find((l) => l.startsWith('recipe'))!;
  for (const s of ['lr 1.5e-4', 'batch 4M (4,194,304) tokens', 'warmup 2000 steps', '1.4T tokens', 'context 2048', 'β 0.9/0.95', 'wd 0.1', 'clip 1.0', 'cosine to 10%']) {
    assert.ok(line.includes(s), `${s} in ${line}`);
  }
  const i7 = runCli(['info', '--preset', 'llama-7b']).stdout;
  assert.match(i7, /^recipe +lr 3\.0e-4, batch 4M .* 1\.0T tokens/m);
  // the lines other tools read are still there, and the JSON carries the recipe
  assert.match(i7, /^parameters +6,738,415,616$/m);
  assert.equal(JSON.parse(runCli(['info', '--preset', 'llama-7b', '--json']).stdout).recipe.lr, 3e-4);
  assert.doesNotMatch(runCli(['info', '--dim', '64']).stdout, /^recipe/m);
});

test('train --preset llama-*: the global batch in tokens becomes batch × seq × accum × dp, the steps follow the tokens', () => {
  const c7 = makeConfig('llama-7b');
  const base = baseHyper({ preset: 'llama-7b' });
  const h = hyperFromValues({}, c7, base);
  assert.deepEqual(
    { lr: h.lr, warmup: h.warmup, seq: h.seq, batch: h.batch, accum: h.accum, steps: h.steps, clip: h.clip, wd: h.weightDecay, b2: h.beta2, min: h.minLrRatio },
    { lr: 3e-4, warmup: 2000, seq: 2048, batch: 1, accum: 2048, steps: Math.ceil(1e12 / 2 ** 22), clip: 1, wd: 0.1, b2: 0.95, min: 0.1 },
  );
  checkHyper(h, c7);
  // data parallelism shares the sequences: 8 ranks accumulate 256 each
  assert.equal(hyperFromValues({}, c7, base, 8).accum, 256);
  assert.equal(hyperFromValues({}, c7, base, 8).steps, h.steps);
  // every value overridable by its flag
  assert.deepEqual(pick(hyperFromValues({ batch: '4' }, c7, base)), { batch: 4, accum: 512, steps: h.steps, seq: 2048 });
  assert.deepEqual(pick(hyperFromValues({ accum: '8' }, c7, base)), { batch: 256, accum: 8, steps: h.steps, seq: 2048 });
  assert.deepEqual(pick(hyperFromValues({ batch: '2', accum: '3' }, c7, base)), { batch: 2, accum: 3, steps: Math.ceil(1e12 / (6 * 2048)), seq: 2048 });
  assert.deepEqual(pick(hyperFromValues({ 'batch-tokens': '1Mi', tokens: '2T' }, c7, base)), { batch: 1, accum: 512, steps: Math.ceil(2e12 / 2 ** 20), seq: 2048 });
  assert.deepEqual(pick(hyperFromValues({ seq: '512' }, makeConfig('llama-7b', { maxSeqLen: 512 }), base)), { batch: 1, accum: 8192, steps: h.steps, seq: 512 });
  assert.equal(hyperFromValues({ steps: '10', warmup: '5' }, c7, base).steps, 10);
  const o = hyperFromValues({ lr: '1e-4', warmup: '10', 'weight-decay': '0', clip: '0.5', beta2: '0.99', 'min-lr-ratio': '0' }, c7, base);
  assert.deepEqual([o.lr, o.warmup, o.weightDecay, o.clip, o.beta2, o.minLrRatio], [1e-4, 10, 0, 0.5, 0.99, 0]);
  assert.equal(hyperFromValues({ steps: '100' }, c7, base).warmup, 100, 'warmup at most --steps');
  assert.deepEqual(pick(hyperFromValues({ 'batch-tokens': '0' }, c7, base)), { batch: 1, accum: 1, steps: Math.ceil(1e12 / 2048), seq: 2048 });
  // 65B: 1.5e-4, 1.4T tokens
  const h65 = hyperFromValues({}, makeConfig('llama-65b'), baseHyper({ preset: 'llama-65b' }));
  assert.deepEqual([h65.lr, h65.steps], [1.5e-4, Math.ceil(1.4e12 / 2 ** 22)]);
});

function pick(h: { batch: number; accum: number; steps: number; seq: number }) {
  return { batch: h.batch, accum: h.accum, steps: h.steps, seq: h.seq };
}

test('the small presets: their own recipe; no preset: the table defaults as before', () => {
  for (const p of ['mini-260k', 'mini-15m', 'mini-42m']) {
    const r = getRecipe(p)!;
    const h = hyperFromValues({}, makeConfig(p), baseHyper({ preset: p }));
    assert.deepEqual([h.lr, h.batch, h.accum, h.steps, h.warmup, h.seq], [r.lr, 8, 1, 1000, 100, r.seq], p);
  }
  const c = makeConfig({ dim: 16, nLayers: 1, nHeads: 2, vocabSize: 259, multipleOf: 8, maxSeqLen: 64 });
  assert.deepEqual(hyperFromValues({}, c, baseHyper({})), { ...HYPER_DEFAULTS, seq: 64 });
  assert.deepEqual(resolveHyper({}, c, recipeHyper(getRecipe('mini-15m')!, HYPER_DEFAULTS)).seq, 64);
});

test('the activation estimate is what Llama allocates', () => {
  for (const [c, B, T] of [
    [makeConfig('mini-260k'), 2, 16],
    [makeConfig({ dim: 32, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 259, multipleOf: 8, maxSeqLen: 64 }), 3, 20],
  ] as const) {
    const m = new Llama(c, createBackend('ref'));
    m.init(1);
    m.forward(new Int32Array(B * T).fill(3), B, T);
    assert.equal(m.activationBytes(), activationFloats(c, B, T) * 4);
  }
  const c7 = makeConfig('llama-7b');
  const one = trainingMemory(c7, { batch: 1, seq: 2048 });
  const tp8 = trainingMemory(c7, { batch: 1, seq: 2048, tp: 8 });
  assert.ok(one.total > 100 * 2 ** 30 && one.total < 130 * 2 ** 30, `7B at batch 1: ${one.total / 2 ** 30} GiB`);
  const part = (m: typeof one, n: string) => m.parts.find((p) => p.name === n)!.bytes;
  assert.ok(Math.abs(part(tp8, 'weights') * 8 - part(one, 'weights')) / part(one, 'weights') < 0.01, 'tp divides the split tensors');
  assert.equal(part(trainingMemory(c7, { batch: 1, seq: 2048, dp: 4, zero: 1 }), 'AdamW'), part(one, 'AdamW') / 4);
  assert.ok(inferenceMemory(c7).total < one.total);
  assert.equal(availableMemory({ LLAMA_TS_MEMORY_LIMIT: '24Gi' }).bytes, 24 * 2 ** 30);
  assert.ok(availableMemory({}).bytes > 0);
});

test('train --preset llama-7b on a 24 GiB machine stops at once with one line', () => {
  const out = mkdtempSync(join(tmpdir(), 'recipe-'));
  const t0 = Date.now();
  failsWithOneLine(
    ['train', '--preset', 'llama-7b', '--out', join(out, 'run')],
    /^llama-ts: error: training this model .*batch 1 × seq 2048.* needs ~1[01]\d\.\d GiB \(weights .* AdamW .* activations .*\) but 24\.0 GiB is available \(LLAMA_TS_MEMORY_LIMIT\): .*--tp .*mpirun.*plan cluster --preset llama-7b.*--force/,
    { LLAMA_TS_MEMORY_LIMIT: '24Gi' },
  );
  assert.ok(Date.now() - t0 < 15000, `took ${Date.now() - t0} ms`);
  assert.ok(!existsSync(join(out, 'run', 'train.jsonl')), 'nothing started');
  // a small model with a too-small limit: the hint names a smaller batch; --force runs it anyway
  const text = join(out, 'corpus.txt');
  writeFileSync(text, Array.from({ length: 60 }, (_, i) => `Paragraph ${i}: the quick brown fox jumps over the lazy dog.`).join('\n\n'));
  const small = ['train', '--dim', '32', '--layers', '1', '--heads', '2', '--seq', '32', '--batch', '64', '--steps', '1', '--eval-batches', '0', '--data', text, '--quiet', '--backend', 'ref'];
  // (the weights, gradients and AdamW fit in 136 MiB with the runtime allowance; the activations of 64 × 32 tokens do not)
  const lim = { LLAMA_TS_MEMORY_LIMIT: '136Mi' };
  failsWithOneLine([...small, '--out', join(out, 'small')], /needs ~.* but 136 MiB is available \(LLAMA_TS_MEMORY_LIMIT\): use a smaller --batch \(now 64/, lim);
  const forced = runCli([...small, '--out', join(out, 'forced'), '--force'], undefined, lim);
  assert.equal(forced.code, 0, forced.stderr);
  assert.ok(existsSync(join(out, 'forced', 'train.jsonl')));
});

test('generate, convert and bench train refuse a model the machine cannot hold', () => {
  const lim = { LLAMA_TS_MEMORY_LIMIT: '1Ki' };
  failsWithOneLine(['generate', '--model', HF_TINY, '--prompt', 'a', '-n', '2'], /^llama-ts: error: loading .* needs ~.* but 1 KiB is available \(LLAMA_TS_MEMORY_LIMIT\)/, lim);
  const out = mkdtempSync(join(tmpdir(), 'recipe-conv-'));
  failsWithOneLine(['convert', '--from', HF_TINY, '--to', join(out, 'x.gguf')], /loading .* needs ~.* is available \(LLAMA_TS_MEMORY_LIMIT\).*--force/, lim);
  const ok = runCli(['generate', '--model', HF_TINY, '--ids', '1,2', '-n', '2', '--force'], undefined, lim);
  assert.equal(ok.code, 0, ok.stderr);
  failsWithOneLine(['bench', 'train', '--preset', 'llama-7b'], /benchmarking this model .* needs ~.* GiB .* but 24\.0 GiB is available/, { LLAMA_TS_MEMORY_LIMIT: '24Gi' });
});

test('plan cluster takes its batch and token budget from the preset unless told otherwise', () => {
  const j = JSON.parse(runCli(['plan', 'cluster', '--preset', 'llama-65b', '--gpus', '2048', '--tp', '8', '--json']).stdout);
  assert.equal(j.globalBatch, 2048);
  assert.equal(j.trainTokens, 1.4e12);
  assert.equal(JSON.parse(runCli(['plan', 'cluster', '--preset', 'llama-7b', '--gpus', '64', '--json']).stdout).trainTokens, 1.0e12);
  const m = JSON.parse(runCli(['plan', 'cluster', '--preset', 'mini-15m', '--gpus', '1', '--json']).stdout);
  assert.equal(m.globalBatch * m.seqLen, getRecipe('mini-15m')!.batchTokens);
  const told = JSON.parse(runCli(['plan', 'cluster', '--preset', 'llama-65b', '--gpus', '2048', '--tp', '8', '--batch-tokens', '2Mi', '--train-tokens', '1T', '--json']).stdout);
  assert.deepEqual([told.globalBatch, told.trainTokens], [1024, 1e12]);
});
