/** Training end to end on a tiny model: exact resume, atomic checkpoints, clear errors. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, existsSync, readdirSync, truncateSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { failsWithOneLine } from './helpers/cli.js';
import { fileURLToPath } from 'node:url';
import { train, HYPER_DEFAULTS, type Hyper } from '../src/training/trainer.js';
import { prepareTextData } from '../src/data/text.js';
import { ByteTokenizer } from '../src/tokenizer/bytes.js';
import { createRefBackend } from '../src/kernels/ref.js';
import { makeConfig } from '../src/model/config.js';
import { openCheckpoint } from '../src/io/checkpoint.js';
import { Llama } from '../src/model/llama.js';

const BIN = fileURLToPath(new URL('../../bin/llama-ts.js', import.meta.url));
const tmp = () => mkdtempSync(join(tmpdir(), 'llama-ts-test-'));

function corpus(): string {
  const dir = tmp();
  const path = join(dir, 'text.txt');
  const paras: string[] = [];
  for (let i = 0; i < 40; i++) paras.push(`Paragraph ${i}: the quick brown fox jumps over the lazy dog ${i % 7} times, and then it rests.`);
  writeFileSync(path, paras.join('\n\n'));
  return path;
}

const config = makeConfig({ dim: 16, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 259, multipleOf: 8, maxSeqLen: 16 });
const hyper: Hyper = { ...HYPER_DEFAULTS, steps: 8, batch: 2, seq: 16, accum: 2, lr: 5e-3, warmup: 2, evalEvery: 4, evalBatches: 2, ckptEvery: 0, seed: 5 };

async function run(runDir: string, dataPath: string, extra: { resume?: boolean; stopAt?: number } = {}) {
  const data = prepareTextData(dataPath, new ByteTokenizer(), hyper.seed, hyper.seq);
  return train({ config, backend: createRefBackend('f32'), hyper, runDir, train: data.train, heldOut: data.heldOut, tokenizer: { kind: 'bytes' }, quiet: true, ...extra });
}

test('N steps + resume + N steps is bit-identical to 2N steps straight', async () => {
  const data = corpus();
  const straight = await run(join(tmp(), 'a'), data);
  const runB = join(tmp(), 'b');
  const first = await run(runB, data, { stopAt: 4 });
  assert.equal(first.steps, 4);
  const second = await run(runB, data, { resume: true });
  assert.equal(second.steps, 8);
  assert.deepEqual([...first.losses, ...second.losses], straight.losses);
  const a = straight.model.params.data;
  const b = second.model.params.data;
  assert.equal(Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)), 0);
  // the saved weights are the trained ones
  const ck = openCheckpoint(runB);
  assert.equal(ck.state.step, 8);
  const m = new Llama(config, createRefBackend('f32'));
  ck.loadInto(m.params);
  assert.deepEqual(Array.from(m.params.data), Array.from(b));
  // losses fell
  assert.ok(straight.losses[7] < straight.losses[0]);
});

test('a crash mid-save leaves the last good checkpoint; a truncated checkpoint is reported', async () => {
  const data = corpus();
  const dir = join(tmp(), 'c');
  await run(dir, data, { stopAt: 2 });
  const root = join(dir, 'checkpoints');
  // simulate a crash in the middle of writing the next checkpoint: a half-written temp directory
  const half = join(root, 'step-00000004.tmp-99999');
  writeFileSync(join(root, 'junk'), '');
  (await import('node:fs')).mkdirSync(half);
  writeFileSync(join(half, 'model.safetensors'), 'partial');
  assert.equal(readFileSync(join(root, 'latest'), 'utf8').trim(), 'step-00000002');
  assert.equal(openCheckpoint(dir).state.step, 2);
  // resuming works and cleans the leftovers
  await run(dir, data, { resume: true, stopAt: 4 });
  assert.ok(!readdirSync(root).some((d) => d.includes('.tmp-')));
  // truncation is detected with a clear message
  const model = join(root, 'step-00000004', 'model.safetensors');
  truncateSync(model, statSync(model).size - 10);
  assert.throws(() => openCheckpoint(dir), /truncated/);
});

function cli(args: string[]) {
  return spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
}

test('CLI: bad input gives one clear line and a non-zero exit', () => {
  const data = corpus();
  const empty = join(tmp(), 'empty.txt');
  writeFileSync(empty, '\n\n');
  const cases: [string[], RegExp][] = [
    [['train', '--preset', 'nope'], /unknown preset 'nope'/],
    [['train', '--dim', '30', '--heads', '4', '--data', data], /not divisible by nHeads/],
    [['train', '--dim', '32', '--heads', '4', '--kv-heads', '3', '--data', data], /not divisible by nKvHeads/],
    [['train', '--dim', '32', '--heads', '4', '--data', '/no/such/file'], /does not exist/],
    [['train', '--dim', '32', '--heads', '4', '--data', empty], /is empty/],
    [['train', '--dim', '32', '--heads', '4', '--steps', 'many'], /--steps expects a number/],
    [['sample', '--checkpoint', '/no/such/dir'], /does not exist/],
    [['train', '--bogus'], /Unknown option '--bogus'/],
  ];
  for (const [args, re] of cases) failsWithOneLine(args, re);
});

test('CLI: train, resume a finished run with more steps, sample; wrong-config resume refused; NaN stops without checkpoint', () => {
  const data = corpus();
  const out = join(tmp(), 'run');
  const common = ['--dim', '16', '--layers', '1', '--heads', '2', '--multiple-of', '8', '--seq', '16', '--batch', '2', '--data', data, '--out', out, '--quiet'];
  let r = cli(['train', ...common, '--steps', '3', '--warmup', '1', '--eval-every', '0']);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(existsSync(join(out, 'checkpoints', 'step-00000003', 'model.safetensors')));
  const log = readFileSync(join(out, 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const steps = log.filter((e) => 'loss' in e);
  assert.equal(steps.length, 3);
  for (const k of ['loss', 'lr', 'grad_norm', 'tokens_per_s', 'mfu']) assert.ok(Number.isFinite(steps[0][k]), k);
  r = cli(['train', ...common, '--steps', '3']);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /already holds a run/);
  r = cli(['train', '--dim', '32', '--layers', '1', '--heads', '2', '--multiple-of', '8', '--seq', '16', '--data', data, '--out', out, '--resume']);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /different model config/);
  r = cli(['train', '--out', out, '--data', data, '--resume', '--steps', '4', '--quiet']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(openCheckpoint(out).state.step, 4);
  r = cli(['sample', '--checkpoint', out, '--prompt', 'The', '--tokens', '5', '--seed', '3']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^--- sample 1 ---\nThe/);
  // a diverging run (absurd learning rate, no clipping) stops with a clear message and keeps the good checkpoint
  const out2 = join(tmp(), 'nan');
  r = cli(['train', ...common.slice(0, -3), '--out', out2, '--quiet', '--steps', '50', '--warmup', '0', '--lr', '1e30', '--clip', '0', '--ckpt-every', '1', '--eval-every', '0']);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /training diverged/);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  const ck = openCheckpoint(out2);
  assert.ok(ck.state.lastLoss !== null && Number.isFinite(ck.state.lastLoss));
});
