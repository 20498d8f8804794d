/** `llama-ts bench train`: one JSON line with the headline numbers; user mistakes are one-line errors, exit 2. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { nativeAvailable } from '../src/kernels/native.js';

const bin = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'llama-ts.js');
const run = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });

test('bench train prints one JSON line with tokens_per_s, mfu, step_ms', () => {
  const r = run('bench', 'train', '--preset', 'mini-260k', '--batch', '2', '--seq', '16', '--steps', '1', '--backend', 'ref', '--peak', '10');
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, 1);
  const j = JSON.parse(lines[0]);
  assert.equal(j.backend, 'ref');
  assert.equal(j.batch, 2);
  assert.equal(j.seq, 16);
  for (const k of ['tokens_per_s', 'mfu', 'step_ms']) assert.ok(j[k] > 0, `${k} = ${j[k]}`);
  for (const k of ['forward', 'loss', 'backward', 'optimizer']) assert.ok(j.phase_ms[k] >= 0);
  assert.equal(j.peak_gflops, 10);
});

test('bench train on the default backend', { skip: nativeAvailable() ? false : 'native addon not built' }, () => {
  const r = run('bench', 'train', '--preset', 'mini-260k', '--batch', '2', '--seq', '32', '--steps', '1', '--threads', '1');
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.backend, 'native');
  assert.equal(j.threads, 1);
  assert.ok(j.mfu > 0 && j.peak_gflops > 0);
});

test('bench user mistakes: one-line error, exit 2', () => {
  for (const [args, msg] of [
    [['bench', 'train', '--preset', 'nope'], /unknown preset 'nope'/],
    [['bench', 'train', '--preset', 'mini-260k', '--backend', 'gpu'], /unknown backend 'gpu'/],
    [['bench', 'train', '--preset', 'mini-260k', '--steps', '0'], /--steps expects an integer >= 1/],
    [['bench', 'fly', '--preset', 'mini-260k'], /unknown benchmark 'fly'/],
    [['bench', 'train', '--preset', 'mini-260k', '--batch', 'x'], /--batch expects a number/],
    [['bench', 'train', '--preset', 'mini-260k', '--peak=-3'], /--peak expects a positive number/],
  ] as const) {
    const r = run(...args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, msg);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});

test('without the addon the default backend is wasm (without wasm too: ref), with a one-line notice', () => {
  const args = [bin, 'bench', 'train', '--preset', 'mini-260k', '--batch', '1', '--seq', '8', '--steps', '1', '--peak', '10'];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', env: { ...process.env, LLAMA_TS_NO_NATIVE: '1' } });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).backend, 'wasm');
  assert.match(r.stderr, /^llama-ts: notice: using the wasm backend: disabled by LLAMA_TS_NO_NATIVE=1\n$/);
  const w = spawnSync(process.execPath, args, { encoding: 'utf8', env: { ...process.env, LLAMA_TS_NO_NATIVE: '1', LLAMA_TS_NO_WASM: '1' } });
  assert.equal(w.status, 0, w.stderr);
  assert.equal(JSON.parse(w.stdout).backend, 'ref');
  assert.match(w.stderr, /^llama-ts: notice: using the ref backend \(slow\): disabled by LLAMA_TS_NO_NATIVE=1; wasm: disabled by LLAMA_TS_NO_WASM=1\n$/);
  const n = spawnSync(process.execPath, [bin, 'bench', 'train', '--preset', 'mini-260k', '--backend', 'native'], {
    encoding: 'utf8', env: { ...process.env, LLAMA_TS_NO_NATIVE: '1' },
  });
  assert.equal(n.status, 2);
  assert.match(n.stderr, /the native backend is unavailable: disabled by LLAMA_TS_NO_NATIVE=1/);
});
