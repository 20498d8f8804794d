import { runCli, failsWithOneLine } from './helpers/cli.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const paper65 = ['plan', 'cluster', '--preset', 'llama-65b', '--gpus', '2048', '--tp', '8', '--sp', '--recompute', 'selective'];

test('plan size: tables, JSON and an SVG chart', () => {
  const dir = mkdtempSync(join(tmpdir(), 'plan-'));
  const svg = join(dir, 'size.svg');
  const t = runCli(['plan', 'size', '--flops', '5.76e23', '--inference-tokens', '2T', '--svg', svg]);
  assert.equal(t.code, 0, t.stderr);
  for (const s of ['compute-optimal', 'numeric min.', 'inference-aware', 'llama-7b', 'llama-65b']) assert.ok(t.stdout.includes(s), s);
  assert.match(readFileSync(svg, 'utf8'), /^<svg/);
  const j = runCli(['plan', 'size', '--flops', '5.76e23', '--json']);
  assert.equal(j.code, 0, j.stderr);
  const out = JSON.parse(j.stdout);
  assert.equal(out.budgetFlops, 5.76e23);
  assert.ok(Math.abs(out.computeOptimal.params - out.numericCheck.params) / out.computeOptimal.params < 1e-6);
  assert.equal(out.llama.length, 4);
  // GPU-hours: H × 3600 × 312 TFLOP/s × MFU.
  const h = JSON.parse(runCli(['plan', 'size', '--gpu-hours', '1M', '--gpu', 'A100-80GB', '--mfu', '0.5', '--json']).stdout);
  assert.ok(Math.abs(h.budgetFlops - 1e6 * 3600 * 312e12 * 0.5) < 1e6);
  // Overridden constants reach the library.
  const o = JSON.parse(runCli(['plan', 'size', '--flops', '1e22', '--E', '2', '--json']).stdout);
  assert.equal(o.fit.E, 2);
  assert.ok(o.computeOptimal.loss > 2);
});

test('plan cluster: table and JSON for the LLaMA-65B setting', () => {
  const t = runCli([...paper65, '--train-tokens', '1.4T']);
  assert.equal(t.code, 0, t.stderr);
  for (const s of ['memory per GPU', 'activations', 'tokens/s/GPU', 'MFU', 'days']) assert.ok(t.stdout.includes(s), s);
  const j = JSON.parse(runCli([...paper65, '--train-tokens', '1.4T', '--json']).stdout);
  assert.equal(j.globalBatch, 2048, '4Mi tokens of 2048 = 2048 sequences');
  assert.ok(j.tokensPerSecPerGpu > 300 && j.tokensPerSecPerGpu < 450);
  assert.ok(j.fits);
  const s = JSON.parse(runCli(['plan', 'cluster', '--preset', 'llama-65b', '--gpus', '2048', '--search', '--top', '3', '--json']).stdout);
  assert.equal(s.best.length, 3);
  assert.ok(s.best[0].tokensPerSecPerGpu >= s.best[2].tokensPerSecPerGpu);
});

test('plan cluster: a user GPU table extends the built-in one', () => {
  const dir = mkdtempSync(join(tmpdir(), 'plan-'));
  const file = join(dir, 'gpus.json');
  writeFileSync(file, JSON.stringify({ MyGPU: { peakTflops: 500, memoryGiB: 96, intraNodeGBps: 400, interNodeGBps: 50, gpusPerNode: 8, matmulEfficiency: 0.6 } }));
  const r = runCli([...paper65, '--gpu', 'MyGPU', '--gpu-table', file, '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).gpuSpec.peakTflops, 500);
  writeFileSync(file, '{"MyGPU": {"peakTflops": 500}}');
  failsWithOneLine([...paper65, '--gpu', 'MyGPU', '--gpu-table', file], /missing/);
  failsWithOneLine([...paper65, '--gpu-table', join(dir, 'absent.json')], /cannot read GPU table/);
  assert.ok(!existsSync(join(dir, 'absent.json')));
});

test('bad input: one clear line and a non-zero exit', () => {
  failsWithOneLine([...paper65, '--gpu', 'V100'], /unknown GPU type 'V100'/);
  failsWithOneLine(['plan', 'cluster', '--preset', 'llama-70b', '--gpus', '8'], /unknown preset 'llama-70b'/);
  failsWithOneLine(['plan', 'size', '--flops', '0'], /--flops must be positive, got 0/);
  failsWithOneLine(['plan', 'size', '--flops', '-1e20'], /--flops must be positive/);
  failsWithOneLine(['plan', 'size', '--gpu-hours', '-5'], /--gpu-hours must be positive/);
  failsWithOneLine(['plan', 'size', '--flops', 'lots'], /--flops expects a positive number/);
  failsWithOneLine(['plan', 'size', '--flops', '1e22', '--inference-tokens', '-3'], /--inference-tokens must be >= 0/);
  failsWithOneLine(['plan', 'size'], /no budget given/);
  failsWithOneLine(['plan', 'size', '--flops', '1e22', '--beta', '0'], /beta must be a positive number/);
  failsWithOneLine(['plan', 'cluster', '--preset', 'llama-65b', '--gpus', '0'], /--gpus expects an integer >= 1/);
  failsWithOneLine(['plan', 'cluster', '--preset', 'llama-65b', '--gpus', '2048', '--train-tokens', '0'], /--train-tokens must be positive/);
  failsWithOneLine(['plan', 'cluster', '--preset', 'llama-65b', '--gpus', '2048', '--tp', '3'], /tensor-parallel degree 3 does not divide the 64 attention heads/);
  failsWithOneLine(['plan', 'cluster', '--preset', 'llama-65b', '--gpus', '2400', '--tp', '8', '--pp', '3'], /pipeline degree 3 does not divide the 80 layers/);
  failsWithOneLine(['plan', 'cluster', '--preset', 'llama-65b', '--gpus', '1001', '--tp', '8'], /GPU count 1001 is not divisible by tp×pp = 8×1/);
  failsWithOneLine([...paper65, '--micro-batch', '3'], /not divisible into micro-batches of 3 on 256 data-parallel ranks/);
  failsWithOneLine([...paper65, '--batch-tokens', '4M'], /not a whole number of 2048-token sequences/);
  failsWithOneLine([...paper65, '--zero', '0'], /does not fit: needs .* GiB per GPU/);
  failsWithOneLine([...paper65, '--recompute', 'some'], /--recompute must be one of none, selective, full/);
  failsWithOneLine(['plan', 'cluster', '--preset', 'llama-65b', '--gpus', '8', '--gpu', 'A100-40GB', '--search'], /no layout of 8 A100-40GB GPUs/);
  failsWithOneLine(['plan', 'nope'], /unknown plan subcommand 'nope'/);
});
