/** `llama-ts bench train`: one JSON line with the headline numbers; user mistakes are one-line errors, exit 2. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import { nativeAvailable } from '../src/kernels/native.js';
import { createBackend } from '../src/kernels/index.js';
import { makeConfig } from '../src/model/config.js';
import { Llama } from '../src/model/llama.js';
import { measureWeightsPass, cpuIdentity } from '../src/inference/bench.js';
import { quantize } from '../src/kernels/ops/quant.js';

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

test('measureWeightsPass times the GEMV over the weights (passes per second) and refuses quantized weights; cpuIdentity reads /proc/cpuinfo', () => {
  const model = new Llama(makeConfig({ dim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 300, maxSeqLen: 32 }), createBackend('ref'));
  model.init(1);
  const calls: number[][] = [];
  const matmul = model.backend.matmul;
  model.backend.matmul = (out, x, w, M, K, N, acc) => {
    calls.push([M, K, N, w.length]);
    return matmul.call(model.backend, out, x, w, M, K, N, acc);
  };
  const rate = measureWeightsPass(model, 3);
  model.backend.matmul = matmul;
  assert.ok(Number.isFinite(rate) && rate > 0, `${rate}`);
  // one untimed pass and 3 timed ones, each over every layer's seven matrices and the head, one x row
  const c = model.config, L = model.layout;
  assert.equal(calls.length, 4 * (7 * c.nLayers + 1));
  assert.deepEqual(calls.slice(0, 8).map(([M, K, N]) => [M, K, N]), [L.layers[0].wq, L.layers[0].wk, L.layers[0].wv, L.layers[0].wo, L.layers[0].w1, L.layers[0].w3, L.layers[0].w2, L.layers[1].wq].map((t) => [1, t.shape[1], t.shape[0]]));
  assert.deepEqual(calls[7 * c.nLayers].slice(0, 3), [1, c.dim, c.vocabSize]);
  for (const [, K, N, n] of calls) assert.equal(n, K * N);
  const w2 = L.layers[1].w2;
  model.setQuantized(w2, { type: 'Q8_0', rows: w2.shape[0], cols: w2.shape[1], data: quantize('Q8_0', model.params.view(w2)) });
  assert.throws(() => measureWeightsPass(model, 1), /layers\.1\.feed_forward\.w2\.weight is quantized/);
  const id = cpuIdentity();
  if (existsSync('/proc/cpuinfo') && /^vendor_id/m.test(readFileSync('/proc/cpuinfo', 'utf8'))) {
    assert.ok(id && id.vendor.length > 0 && Number.isInteger(id.family) && Number.isInteger(id.model), JSON.stringify(id));
  } else assert.equal(id, null);
});
