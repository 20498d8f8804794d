/** Memory accounting: bench train and info --memory report each category, predicted and measured, consistently. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { benchTrain } from '../src/bench/train.js';
import { createRefBackend } from '../src/kernels/ref.js';
import { makeConfig } from '../src/model/config.js';
import { runCli } from './helpers/cli.js';
import { spawnSync } from 'node:child_process';
import { peakRssBytes } from '../src/util/memory.js';

const config = () => makeConfig({ dim: 32, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 96, multipleOf: 16, maxSeqLen: 16 });
const CATEGORIES = ['weights', 'gradients', 'optimizer', 'activations_saved', 'workspace'] as const;

test('bench train: every category predicted and measured; they agree; the totals add up', () => {
  for (const dtype of ['f32', 'bf16'] as const) {
    for (const recompute of ['none', 'full'] as const) {
      const r = benchTrain({ config: config(), batch: 2, seq: 16, backend: createRefBackend('f32'), steps: 1, peakGflops: 1, recompute, dtype });
      const { predicted, measured } = r.memory;
      const tag = `${dtype} ${recompute}`;
      for (const k of CATEGORIES) {
        assert.ok(Number.isInteger(predicted[k]) && predicted[k] > 0, `${tag} predicted ${k}`);
        assert.equal(measured[k], predicted[k], `${tag} ${k}: the buffers allocated are the ones predicted`);
      }
      assert.equal(predicted.total, CATEGORIES.reduce((a, k) => a + predicted[k], 0));
      assert.equal(measured.total, CATEGORIES.reduce((a, k) => a + measured[k], 0));
      assert.equal(measured.activations_saved + measured.workspace, r.activation_bytes);
      assert.equal(r.memory.activations_saved_ratio, 1);
      for (const k of ['peak_rss', 'heap_used', 'external', 'array_buffers'] as const) assert.ok(measured[k] > 0, `${tag} ${k}`);
      assert.equal(typeof measured.activations_process, 'number'); // process-level: the collector may free other buffers meanwhile
      const c = config(), packed = 2 * (Math.ceil(c.dim / 2) * Math.ceil(c.vocabSize / 32) * 64 + Math.ceil(c.vocabSize / 2) * Math.ceil(c.dim / 32) * 64);
      assert.equal(predicted.weights, r.params * 4 + (dtype === 'bf16' ? r.params * 2 + packed : 0), 'float32 master weights (+ their bf16 copy, the head packed twice)');
      assert.equal(predicted.optimizer, 2 * predicted.gradients);
    }
  }
});

test('info --memory: the categories for the policy and dtype given (--json), one line for a bad value', () => {
  const base = ['info', '--dim', '32', '--layers', '2', '--heads', '4', '--multiple-of', '16', '--seq', '16', '--batch', '2', '--memory', '--json'];
  const none = JSON.parse(runCli(base).stdout);
  const full = JSON.parse(runCli([...base, '--recompute', 'full', '--dtype', 'bf16']).stdout);
  assert.equal(none.recompute, 'none');
  assert.equal(full.dtype, 'bf16');
  for (const k of [...CATEGORIES, 'total']) assert.ok(none.predicted[k] > 0 && full.predicted[k] > 0, k);
  assert.ok(full.predicted.activations_saved < none.predicted.activations_saved);
  const measured = JSON.parse(runCli([...base, '--measure']).stdout).measured;
  for (const k of CATEGORIES) assert.equal(measured[k], none.predicted[k], k);
  const bad = runCli([...base, '--dtype', 'f8']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /--dtype must be one of f32, bf16/);
  assert.equal(runCli(['info', '--dim', '32', '--layers', '2', '--heads', '4', '--dtype', 'bf16']).stderr.trim(), 'llama-ts: error: --dtype goes with --memory');
});

test('peakRssBytes: this process\'s own high-water mark, at least its resident set now; a child spawned by a larger process reports its own', () => {
  const rss = process.memoryUsage().rss;
  const peak = peakRssBytes();
  assert.ok(peak >= rss * 0.99, `peak ${peak} < rss ${rss}`);
  if (process.platform !== 'linux') return;
  // grow this process well past a bare node's size, then ask a child: its peak must be its own (a bare node is
  // ~40-60 MB), not ours folded in at exec as getrusage's maxrss would report
  const ballast = new Uint8Array(400 << 20).fill(1);
  const r = spawnSync(process.execPath, ['--input-type=module', '-e',
    `import { peakRssBytes } from ${JSON.stringify(new URL('../src/util/memory.js', import.meta.url).href)}; console.log(peakRssBytes(), process.resourceUsage().maxRSS * 1024)`], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const [childPeak] = r.stdout.trim().split(' ').map(Number);
  assert.ok(childPeak < 300 << 20, `child peak ${childPeak} includes the parent's ${ballast.length} bytes`);
});
