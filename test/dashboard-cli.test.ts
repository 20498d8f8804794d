/**
 * The dashboard's commands and what training writes for it: run.json (writer, settings, checkpoint, outcome),
 * --sample-every samples in train.jsonl, train --dashboard, llama-ts plot to SVG (and PNG through Chromium).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { hostname } from 'node:os';
import { bin, failsWithOneLine, runCli } from './helpers/cli.js';
import { paragraphCorpus, tmp } from './helpers/data.js';
import { fakeRun } from './helpers/dashboard.js';

const TINY = ['--dim', '16', '--layers', '1', '--heads', '2', '--multiple-of', '8', '--seq', '16', '--batch', '2', '--backend', 'ref', '--quiet'];
const lines = (dir: string) => readFileSync(join(dir, 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));

test('train writes run.json (pid, host, settings, checkpoint, outcome) and --sample-every samples into train.jsonl', () => {
  const out = join(tmp(), 'run');
  const r = runCli(['train', ...TINY, '--data', paragraphCorpus(), '--out', out, '--steps', '6', '--eval-every', '3', '--eval-batches', '1', '--sample-every', '3', '--sample-prompt', 'The ']);
  assert.equal(r.code, 0, r.stderr);
  const info = JSON.parse(readFileSync(join(out, 'run.json'), 'utf8'));
  assert.equal(info.status, 'finished');
  assert.equal(info.host, hostname());
  assert.ok(Number.isInteger(info.pid) && info.pid !== process.pid);
  assert.deepEqual([info.startStep, info.stopAt, info.steps, info.tokensPerStep], [0, 6, 6, 32]);
  assert.equal(info.hyper.lr, 1e-3);
  assert.equal(info.config.dim, 16);
  assert.equal(info.checkpoint.step, 6);
  assert.ok(existsSync(info.checkpoint.path));
  const samples = lines(out).filter((l) => 'sample' in l);
  assert.deepEqual(samples.map((s) => s.step), [3, 6]);
  for (const s of samples) {
    assert.deepEqual(Object.keys(s), ['step', 'prompt', 'sample']);
    assert.equal(s.prompt, 'The ');
    assert.ok(s.sample.length > 0);
  }
  // the same seed gives the same samples (sampling does not disturb the training either)
  const again = join(tmp(), 'again');
  assert.equal(runCli(['train', ...TINY, '--data', paragraphCorpus(), '--out', again, '--steps', '6', '--eval-every', '3', '--eval-batches', '1']).code, 0);
  assert.deepEqual(lines(again).filter((l) => 'loss' in l).map((l) => l.loss), lines(out).filter((l) => 'loss' in l).map((l) => l.loss));
});

test('a diverging run ends with status diverged in run.json', () => {
  const out = join(tmp(), 'nan');
  const r = runCli(['train', ...TINY, '--data', paragraphCorpus(), '--out', out, '--steps', '50', '--warmup', '0', '--lr', '1e30', '--clip', '0', '--eval-every', '0']);
  assert.notEqual(r.code, 0);
  const info = JSON.parse(readFileSync(join(out, 'run.json'), 'utf8'));
  assert.equal(info.status, 'diverged');
  assert.match(info.error, /training diverged/);
});

test('sample and dashboard flags: one-line errors', async () => {
  const data = paragraphCorpus();
  failsWithOneLine(['train', ...TINY, '--data', data, '--out', join(tmp(), 'x'), '--sample-prompt', 'hi'], /--sample-prompt needs --sample-every N/);
  failsWithOneLine(['train', ...TINY, '--data', data, '--out', join(tmp(), 'x'), '--sample-every', '-1'], /--sample-every/);
  failsWithOneLine(['train', ...TINY, '--data', data, '--out', join(tmp(), 'x'), '--dashboard=70000'], /--dashboard must be a port number/);
  failsWithOneLine(['dashboard'], /give one or more run directories/);
  const busy = createServer().listen(0, '127.0.0.1');
  await once(busy, 'listening');
  const port = (busy.address() as { port: number }).port;
  failsWithOneLine(['train', ...TINY, '--data', data, '--out', join(tmp(), 'x'), '--steps', '2', `--dashboard=${port}`], new RegExp(`port ${port} on 127\\.0\\.0\\.1 is in use: choose another port`));
  busy.close();
  failsWithOneLine(['plot', join(tmp(), 'none'), '--out', join(tmp(), 'a.svg')], /is not a run directory/);
  failsWithOneLine(['plot', fakeRun(join(tmp(), 'r'), 3), '--out', join(tmp(), 'a.pdf')], /--out must end in \.svg or \.png/);
  failsWithOneLine(['plot', fakeRun(join(tmp(), 'r'), 3)], /give --out curves\.svg/);
});

test('train --dashboard serves the run while it trains and prints the URL', async () => {
  const out = join(tmp(), 'live');
  const child = spawn(process.execPath, [bin, 'train', ...TINY, '--data', paragraphCorpus(), '--out', out, '--steps', '400', '--eval-every', '0', '--ckpt-every', '0', '--dashboard=0'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  const url = await new Promise<string>((ok, fail) => {
    child.stderr.on('data', (d) => {
      stderr += d;
      const m = /dashboard: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(stderr);
      if (m) ok(m[1]);
    });
    child.on('exit', () => fail(new Error(`exited before printing the URL: ${stderr}`)));
  });
  try {
    assert.match(await (await fetch(url)).text(), /<title>llama-ts dashboard<\/title>/);
    let runs: { state: string; step: number | null }[] = [];
    for (let i = 0; i < 100 && !(runs[0]?.step! > 0); i++) {
      runs = await (await fetch(url + 'api/runs')).json();
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(runs[0].state, 'running');
    assert.ok(runs[0].step! > 0);
  } finally {
    child.kill('SIGINT');
    await new Promise((r) => child.on('exit', r));
  }
  assert.match(stderr, /look at the run again with: llama-ts dashboard /);
});

test('plot writes the charts of several runs as SVG without a browser, and PNG through Chromium when present', () => {
  const d = tmp();
  const a = fakeRun(join(d, 'lr-3e-4'), 50);
  const b = fakeRun(join(d, 'lr-1e-3'), 30, {}, 1e-3);
  const svgPath = join(d, 'curves.svg');
  const r = runCli(['plot', a, b, '--out', svgPath, '--log-y']);
  assert.equal(r.code, 0, r.stderr);
  const svg = readFileSync(svgPath, 'utf8');
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  for (const title of ['loss', 'learning rate', 'gradient norm', 'tokens / s', 'MFU', 'phase times']) assert.ok(svg.includes(title), title);
  assert.ok(svg.includes('lr-3e-4') && svg.includes('lr-1e-3'), 'both runs in the legends');
  assert.match(svg, />[1-9](\.\d+)?e-4</, 'the learning rate axis reads 1e-4 or so, not 0');
  assert.ok((svg.match(/<path d="M/g) ?? []).length >= 2 * 9, 'a line per run and series');
  const png = join(d, 'curves.png');
  const p = runCli(['plot', a, '--out', png]);
  if (existsSync('/usr/bin/chromium')) {
    assert.equal(p.code, 0, p.stderr);
    assert.deepEqual([...readFileSync(png).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
  } else {
    assert.equal(p.code, 2);
    assert.match(p.stderr, /^llama-ts: error: writing a \.png needs Chromium/);
  }
});

test('demo prints the dashboard command for its run (and logs samples for it)', async () => {
  const { makePrepared } = await import('./helpers/data.js');
  const data = await makePrepared([{ name: 'a', docs: 40, weight: 1 }], { totalTokens: 2e5 });
  const out = join(tmp(), 'demo');
  const r = runCli(['demo', '--minutes', '0.001', '--data', data, '--out', out, '--quiet', '--eval-batches', '1']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stderr.includes(`watch it live: npx llama-ts dashboard ${out}`), r.stderr);
  assert.ok(r.stdout.includes(`dashboard:  npx llama-ts dashboard ${out}`), r.stdout);
  assert.ok(lines(out).some((l) => 'sample' in l && l.prompt === 'The '));
});

test('dashboard on a non-loopback address says so before it prints the URL', async () => {
  const child = spawn(process.execPath, [bin, 'dashboard', fakeRun(join(tmp(), 'r'), 2), '--host', '0.0.0.0', '--port', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  await new Promise<void>((ok, fail) => {
    child.stderr.on('data', (d) => {
      stderr += d;
      if (/dashboard: http/.test(stderr)) ok();
    });
    child.on('exit', () => fail(new Error(stderr)));
  });
  child.kill('SIGINT');
  await new Promise((r) => child.on('exit', r));
  assert.match(stderr, /^warning: the dashboard listens on 0\.0\.0\.0: anyone who can reach this machine can read these runs' logs\ndashboard: http:\/\/127\.0\.0\.1:\d+\//);
});
