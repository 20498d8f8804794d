/** The loop around the step: metric sinks, the train.jsonl format, evaluation and checkpoint cadence, Ctrl-C. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { train, HYPER_DEFAULTS, type Hyper, type MetricSink } from '../src/training/trainer.js';
import { openCheckpoint } from '../src/io/checkpoint.js';
import { prepareTextData } from '../src/data/text.js';
import { ByteTokenizer } from '../src/tokenizer/bytes.js';
import { paragraphCorpus } from './helpers/data.js';
import { createRefBackend } from '../src/kernels/ref.js';
import { makeConfig } from '../src/model/config.js';
import { bin } from './helpers/cli.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'llama-ts-test-'));
const config = makeConfig({ dim: 16, nLayers: 1, nHeads: 2, nKvHeads: 2, vocabSize: 259, multipleOf: 8, maxSeqLen: 16 });
const hyper: Hyper = { ...HYPER_DEFAULTS, steps: 6, batch: 2, seq: 16, accum: 1, lr: 5e-3, warmup: 1, evalEvery: 2, evalBatches: 1, ckptEvery: 4, seed: 5 };

const corpus = paragraphCorpus;

test('sinks see start, steps, evaluations, checkpoints and the end in order; train.jsonl keeps its format', async () => {
  const events: string[] = [];
  const sink: MetricSink = {
    onStart: (r) => events.push(`start ${r.startStep}→${r.stopAt}/${r.steps} world ${r.world}`),
    onStep: (r) => events.push(`step ${r.step}`),
    onEval: (r) => events.push(`eval ${r.step}`),
    onCheckpoint: (path, step) => events.push(`ckpt ${step} ${path.endsWith(`step-0000000${step}`)}`),
    onEnd: (e) => events.push(`end ${e.step} ${e.outcome}`),
  };
  const runDir = join(tmp(), 'run');
  const data = prepareTextData(corpus(), new ByteTokenizer(), hyper.seed, hyper.seq);
  const r = await train({ config, backend: createRefBackend('f32'), hyper, runDir, train: data.train, heldOut: data.heldOut, tokenizer: { kind: 'bytes' }, quiet: true, sinks: [sink], stopAt: 5 });
  assert.equal(r.steps, 5);
  assert.deepEqual(events, ['start 0→5/6 world 1', 'eval 0', 'step 1', 'step 2', 'eval 2', 'step 3', 'step 4', 'eval 4', 'ckpt 4 true', 'step 5', 'ckpt 5 true', 'end 5 stopped']);
  const log = readFileSync(join(runDir, 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(log.map((e) => e.step), [0, 1, 2, 2, 3, 4, 4, 5]);
  for (const e of log) {
    if ('eval_loss' in e) assert.deepEqual(Object.keys(e), ['step', 'eval_loss']);
    else {
      assert.deepEqual(Object.keys(e), ['step', 'loss', 'lr', 'grad_norm', 'tokens_per_s', 'mfu', 'ms']);
      assert.deepEqual(Object.keys(e.ms), ['forward', 'loss', 'backward', 'optimizer', 'total', 'comm']);
    }
  }
  events.length = 0;
  const again = prepareTextData(corpus(), new ByteTokenizer(), hyper.seed, hyper.seq);
  await train({ config, backend: createRefBackend('f32'), hyper, runDir, train: again.train, heldOut: again.heldOut, tokenizer: { kind: 'bytes' }, quiet: true, sinks: [sink], resume: true });
  assert.deepEqual(events, ['start 5→6/6 world 1', 'step 6', 'ckpt 6 true', 'eval 6', 'end 6 finished']);
});

test('Ctrl-C finishes the step, checkpoints it, says so and exits 130 (no evaluation of a step not reached)', async () => {
  const out = join(tmp(), 'run');
  const args = [bin, 'train', '--dim', '16', '--layers', '1', '--heads', '2', '--multiple-of', '8', '--seq', '16', '--batch', '2',
    '--data', corpus(), '--out', out, '--steps', '100000', '--eval-every', '0', '--ckpt-every', '0', '--backend', 'ref'];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const log = join(out, 'train.jsonl');
  while (!existsSync(log) || !readFileSync(log, 'utf8').includes('"loss"')) await new Promise((res) => setTimeout(res, 20));
  child.kill('SIGINT');
  const code = await new Promise((res) => child.on('exit', res));
  assert.equal(code, 130, stderr);
  assert.match(stderr, /interrupt: finishing this step and saving a checkpoint/);
  const steps = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const last = steps[steps.length - 1];
  assert.ok('loss' in last, 'no evaluation after the interrupt');
  assert.equal(openCheckpoint(out).state.step, last.step);
  assert.match(stderr, new RegExp(`interrupted at step ${last.step}; checkpoint .*step-0*${last.step}; continue with --resume`));
  assert.doesNotMatch(stderr, /trained \d+ steps|step [1-9]\d*: held-out loss/);
});
