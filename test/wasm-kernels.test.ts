/**
 * Every kernel of the wasm backend against the ref backend (odd sizes, T=1, GQA), with the caller's arrays (copied
 * in and out) and with arrays from the backend's own memory (no copies); results independent of the thread count.
 * The suite runs on the plain-SIMD module here and again, in a child process with Node's relaxed-SIMD flag, on the
 * relaxed-SIMD module (WASM_TEST_RELAXED=1).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createRefBackend } from '../src/kernels/ref.js';
import { makeRopeTable, type AttentionShape, type FloatArray } from '../src/kernels/backend.js';
import { createWasmBackend, type WasmBackend } from '../src/kernels/wasm.js';
import { loadWasm, nodeWasmHost, wasmModulePaths } from '../src/kernels/wasm-node.js';
import { readFileSync } from 'node:fs';
import { Rng } from '../src/util/rng.js';
import { randn, assertClose } from './helpers/native.js';
import { checkEmbedding, checkRmsnorm, checkRope, checkElementwise, checkCrossEntropy } from './helpers/backend-checks.js';

const RELAXED = process.env.WASM_TEST_RELAXED === '1';
const loaded = loadWasm();
const skip: false | string = loaded.backend ? false : `wasm backend unavailable: ${loaded.error}`;
const ref = createRefBackend('f32');

function wasm(): WasmBackend {
  return loaded.backend!;
}

/** Runs fn with arrays the caller made (`own`: copies) and with arrays of the backend's memory (`alloc`). */
function bothMemories(be: WasmBackend, fn: (mk: (a: Float32Array) => Float32Array, where: string) => void): void {
  fn((a) => a, 'own arrays');
  fn((a) => {
    const b = be.alloc(a.length) as Float32Array;
    b.set(a);
    return b;
  }, 'backend memory');
}

test('the module in use is the expected SIMD path', { skip }, () => {
  assert.equal(wasm().simd(), RELAXED ? 'relaxed-simd' : 'simd128');
  assert.equal(wasm().name, 'wasm');
});

const MM_SHAPES: [number, number, number][] = [
  [1, 1, 1], [1, 288, 770], [5, 20, 600], [33, 100, 130], [64, 65, 64], [7, 13, 5], [33, 65, 17], [3, 517, 2], [1, 15, 7],
  [4, 300, 47], [150, 203, 90], [77, 7, 129], [200, 600, 131], [130, 288, 768],
];

test('matmul, matmulBackwardInput, matmulBackwardWeight match ref (odd shapes, K past one block)', { skip }, () => {
  const be = wasm();
  const rng = new Rng(1);
  bothMemories(be, (mk, where) => {
    for (const [M, K, N] of MM_SHAPES) {
      const x = mk(randn(rng, M * K)), w = mk(randn(rng, N * K)), dy = mk(randn(rng, M * N));
      const tag = `${where} M=${M} K=${K} N=${N}`;
      for (const acc of [false, true]) {
        const init = randn(rng, M * N);
        const a = mk(Float32Array.from(init)), b = Float32Array.from(init);
        be.matmul(a, x, w, M, K, N, acc);
        ref.matmul(b, x, w, M, K, N, acc);
        assertClose(a, b, 2e-6 * Math.sqrt(K), `matmul acc=${acc} ${tag}`);
        const init2 = randn(rng, M * K);
        const c = mk(Float32Array.from(init2)), d = Float32Array.from(init2);
        be.matmulBackwardInput(c, dy, w, M, K, N, acc);
        ref.matmulBackwardInput(d, dy, w, M, K, N, acc);
        assertClose(c, d, 2e-6 * Math.sqrt(N), `matmulBackwardInput acc=${acc} ${tag}`);
      }
      const init3 = randn(rng, N * K);
      const e = mk(Float32Array.from(init3)), f = Float32Array.from(init3);
      be.matmulBackwardWeight(e, dy, x, M, K, N);
      ref.matmulBackwardWeight(f, dy, x, M, K, N);
      assertClose(e, f, 2e-6 * Math.sqrt(M), `matmulBackwardWeight ${tag}`);
    }
  });
});

test('matmul leaves memory outside the output untouched and handles K = 0', { skip }, () => {
  const be = wasm();
  const rng = new Rng(2);
  const M = 13, K = 21, N = 19;
  const x = randn(rng, M * K), w = randn(rng, N * K);
  for (const big of [new Float32Array(M * N + 50), be.alloc(M * N + 50) as Float32Array]) {
    big.fill(7);
    be.matmul(big.subarray(10, 10 + M * N), x, w, M, K, N);
    for (let i = 0; i < 10; i++) assert.equal(big[i], 7);
    for (let i = 10 + M * N; i < big.length; i++) assert.equal(big[i], 7);
  }
  const out = new Float32Array(4).fill(3);
  be.matmul(out, new Float32Array(0), new Float32Array(0), 2, 0, 2);
  assert.deepEqual([...out], [0, 0, 0, 0]);
});

test('results do not depend on the thread count (1 vs 3 threads, bit for bit)', { skip }, () => {
  const rng = new Rng(3);
  const M = 300, K = 288, N = 200;
  const x = randn(rng, M * K), w = randn(rng, N * K), dy = randn(rng, M * N);
  const T = 70, s: AttentionShape = { batch: 2, seq: T, nHeads: 4, nKvHeads: 2, headDim: 8 };
  const q = randn(rng, 2 * T * 32), k = randn(rng, 2 * T * 16), v = randn(rng, 2 * T * 16);
  const big = randn(rng, 100003);
  const run = (be: WasmBackend) => {
    const out = new Float32Array(M * N), dw = new Float32Array(N * K);
    be.matmul(out, x, w, M, K, N);
    be.matmulBackwardWeight(dw, dy, x, M, K, N);
    const att = new Float32Array(2 * T * 32), lse = new Float32Array(2 * 4 * T);
    be.attention(att, lse, q, k, v, s);
    const g = [new Float32Array(2 * T * 32), new Float32Array(2 * T * 16), new Float32Array(2 * T * 16)];
    be.attentionBackward(g[0], g[1], g[2], att, q, k, v, att, lse, s);
    return [out, dw, att, lse, ...g, [be.sumSquares(big, big.length)]];
  };
  const one = createWasmBackend(nodeWasmHost({ threads: 1, simd: RELAXED ? 'relaxed-simd' : 'simd128' }));
  const three = createWasmBackend(nodeWasmHost({ threads: 3, simd: RELAXED ? 'relaxed-simd' : 'simd128' }));
  assert.equal(one.threads(), 1);
  assert.equal(three.threads(), 3);
  const a = run(one), b = run(three);
  for (let i = 0; i < a.length; i++) assert.deepEqual(Array.from(a[i]), Array.from(b[i]), `result ${i}`);
});

test('the single-threaded module over an unshared memory (pages that are not cross-origin isolated) matches ref', { skip: skip || RELAXED }, () => {
  const module = new WebAssembly.Module(readFileSync(wasmModulePaths().single));
  const be = createWasmBackend({ module, simd: 'simd128', threads: 4, shared: false });
  assert.equal(be.threads(), 1);
  const rng = new Rng(13);
  const M = 70, K = 300, N = 90;
  const x = randn(rng, M * K), w = randn(rng, N * K);
  const big = be.alloc(10_000_000) as Float32Array; // grows the memory: earlier arrays must survive (alloc gives ordinary arrays here)
  const a = be.alloc(M * N) as Float32Array, b = new Float32Array(M * N);
  be.matmul(a, x, w, M, K, N);
  ref.matmul(b, x, w, M, K, N);
  assertClose(a, b, 2e-6 * Math.sqrt(K), 'matmul on the single-threaded module');
  const s: AttentionShape = { batch: 2, seq: 40, nHeads: 4, nKvHeads: 2, headDim: 8 };
  const q = randn(rng, 2 * 40 * 32), k = randn(rng, 2 * 40 * 16), v = randn(rng, 2 * 40 * 16);
  const o1 = new Float32Array(q.length), o2 = new Float32Array(q.length), l1 = new Float32Array(320), l2 = new Float32Array(320);
  be.attention(o1, l1, q, k, v, s);
  ref.attention(o2, l2, q, k, v, s);
  assertClose(o1, o2, 2e-5, 'attention on the single-threaded module');
  assert.equal(big.length, 10_000_000);
});

test('embedding and its backward (repeated tokens)', { skip }, () => checkEmbedding(wasm()));

test('rmsnorm forward and backward (accumulating dx, dw)', { skip }, () => checkRmsnorm(wasm()));

test('rope forward and backward with position offsets', { skip }, () => checkRope(wasm()));

const ATT_SHAPES: AttentionShape[] = [
  { batch: 1, seq: 1, nHeads: 1, nKvHeads: 1, headDim: 2 },
  { batch: 2, seq: 1, nHeads: 4, nKvHeads: 2, headDim: 8 },
  { batch: 2, seq: 5, nHeads: 4, nKvHeads: 4, headDim: 6 },
  { batch: 1, seq: 70, nHeads: 4, nKvHeads: 1, headDim: 6 },
  { batch: 2, seq: 129, nHeads: 2, nKvHeads: 2, headDim: 16 },
  { batch: 1, seq: 64, nHeads: 6, nKvHeads: 3, headDim: 48 },
  { batch: 1, seq: 200, nHeads: 2, nKvHeads: 1, headDim: 7 },
];

test('attention forward and backward match ref (T=1, GQA, odd head dims, blocks of 64 keys)', { skip }, () => {
  const be = wasm();
  const rng = new Rng(7);
  for (const s of ATT_SHAPES) {
    const { batch: B, seq: T, nHeads: H, nKvHeads: KV, headDim: hd } = s;
    const nq = B * T * H * hd, nk = B * T * KV * hd;
    const q = randn(rng, nq, 1.5), k = randn(rng, nk, 1.5), v = randn(rng, nk);
    const o2 = new Float32Array(nq), l2 = new Float32Array(B * H * T);
    ref.attention(o2, l2, q, k, v, s);
    const dout = randn(rng, nq);
    const g2 = [new Float32Array(nq), new Float32Array(nk), new Float32Array(nk)];
    ref.attentionBackward(g2[0], g2[1], g2[2], dout, q, k, v, o2, l2, s);
    const tag = JSON.stringify(s);
    const o1 = new Float32Array(nq), l1 = new Float32Array(B * H * T);
    be.attention(o1, l1, q, k, v, s);
    assertClose(o1, o2, 2e-5, `attention out ${tag}`);
    assertClose(l1, l2, 2e-6, `attention lse ${tag}`);
    const g1 = [new Float32Array(nq).fill(9), new Float32Array(nk).fill(9), new Float32Array(nk).fill(9)];
    be.attentionBackward(g1[0], g1[1], g1[2], dout, q, k, v, o2, l2, s);
    assertClose(g1[0], g2[0], 5e-5, `attentionBackward dq ${tag}`, undefined, 1);
    assertClose(g1[1], g2[1], 5e-5, `attentionBackward dk ${tag}`, undefined, 1);
    assertClose(g1[2], g2[2], 5e-5, `attentionBackward dv ${tag}`, undefined, 1);
  }
});

test('attentionCached (n query rows over a KV cache) matches ref', { skip }, () => {
  const be = wasm();
  const rng = new Rng(11);
  const shapes: [number, number, number, number, number][] = [
    [1, 0, 6, 6, 48], [1, 95, 8, 8, 64], [3, 10, 4, 2, 8], [5, 0, 4, 1, 7], [17, 40, 2, 2, 33], [1, 300, 6, 3, 48], [2, 1, 1, 1, 1],
  ];
  for (const [n, pos, H, KV, hd] of shapes) {
    const q = randn(rng, n * H * hd), k = randn(rng, (pos + n) * KV * hd), v = randn(rng, (pos + n) * KV * hd);
    const a = new Float32Array(n * H * hd).fill(9), b = new Float32Array(n * H * hd);
    be.attentionCached(a, q, k, v, n, pos, H, KV, hd);
    ref.attentionCached(b, q, k, v, n, pos, H, KV, hd);
    assertClose(a, b, 2e-5, `attentionCached n=${n} pos=${pos} H=${H} KV=${KV} hd=${hd}`);
  }
});

test('swiglu, add, scale, sumSquares', { skip }, () => checkElementwise(wasm()));

test('crossEntropy, logSumExp, softmaxScaled (aliasing, ignored rows, vocab not a multiple of 4)', { skip }, () => {
  const be = wasm();
  checkCrossEntropy(be);
  const rng = new Rng(10);
  for (const [rows, V] of [[1, 1], [5, 7], [33, 1000], [4, 32000]]) {
    const logits = randn(rng, rows * V, 3);
    const s1 = new Float32Array(rows), s2 = new Float32Array(rows);
    be.logSumExp(s1, logits, rows, V);
    ref.logSumExp(s2, logits, rows, V);
    assertClose(s1, s2, 1e-6, `logSumExp ${rows}x${V}`);
    const c = Float32Array.from(logits), d = Float32Array.from(logits);
    be.softmaxScaled(c, c, s2, rows, V, 0.5);
    ref.softmaxScaled(d, d, s2, rows, V, 0.5);
    assertClose(c, d, 1e-5, `softmaxScaled ${rows}x${V}`);
  }
});

test('adamw matches ref', { skip }, () => {
  const be = wasm();
  const rng = new Rng(11);
  const n = 70001;
  const p = randn(rng, n), g = randn(rng, n), m = randn(rng, n, 0.1), v = new Float32Array(n).map(() => Math.abs(rng.normal()) * 0.01);
  const [p1, m1, v1] = [p, m, v].map((a) => Float32Array.from(a));
  const [p2, m2, v2] = [p, m, v].map((a) => Float32Array.from(a));
  for (const step of [1, 2, 10, 12345]) {
    const h = { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step };
    be.adamw(p1, g, m1, v1, n, h);
    ref.adamw(p2, g, m2, v2, n, h);
  }
  assertClose(p1, p2, 1e-6, 'adamw p');
  assertClose(m1, m2, 1e-6, 'adamw m');
  assertClose(v1, v2, 1e-6, 'adamw v');
});

test('memory from alloc is reused after its array is collected, and grows past the first pages', { skip }, () => {
  const be = wasm();
  const before = be.memoryBytes();
  const big = be.alloc(40 * 1024 * 1024 / 4) as FloatArray; // 40 MiB: more than the initial pages
  big[big.length - 1] = 1;
  assert.ok(be.memoryBytes() > before);
  const x = randn(new Rng(1), 64);
  const o = be.alloc(64) as Float32Array;
  be.scale(o, 0, 64);
  be.add(o, x, x, 64);
  assertClose(o, x.map((a) => 2 * a), 0, 'add on memory after growth');
  assert.equal(big[big.length - 1], 1);
});

test('shape mismatches and bad inputs throw descriptive errors', { skip }, () => {
  const be = wasm();
  const f = (n: number) => new Float32Array(n);
  assert.throws(() => be.matmul(f(5), f(6), f(6), 2, 3, 3), /matmul: out has 5 elements, shape needs 6/);
  assert.throws(() => be.matmul(f(6), f(6), f(9), 2.5, 3, 3), /matmul: bad size 2.5 for M/);
  assert.throws(() => be.matmul(new Float64Array(6), f(6), f(9), 2, 3, 3), (e: Error) => e instanceof TypeError && /out must be a Float32Array/.test(e.message));
  assert.throws(() => be.embedding(f(6), f(6), Int32Array.from([0, 3]), 3), /embedding: token id 3 at position 1 is outside the vocabulary \(0..1\)/);
  assert.throws(() => be.embeddingBackward(f(6), f(6), Int32Array.from([-1, 0]), 3), /embeddingBackward: token id -1/);
  const table = makeRopeTable(4, 8, 10000);
  assert.throws(() => be.rope(f(4 * 9), 1, 9, 1, table), /rope: positions 0..8 exceed the rope table \(8\)/);
  const s = { batch: 1, seq: 4, nHeads: 3, nKvHeads: 2, headDim: 2 };
  assert.throws(() => be.attention(f(24), f(12), f(24), f(16), f(16), s), /attention: nHeads 3 not divisible by nKvHeads 2/);
  assert.throws(() => be.crossEntropy(f(6), Int32Array.from([1, 3]), 2, 3, null, 1), /crossEntropy: target 3 at row 1 is outside the vocabulary \(3\)/);
  assert.throws(() => be.adamw(f(4), f(4), f(3), f(4), 4, { lr: 1, beta1: 0.9, beta2: 0.9, eps: 1e-8, weightDecay: 0, step: 1 }), /adamw: m has 3 elements/);
});

test('the kernels also pass on the relaxed-SIMD module (child process with --experimental-wasm-relaxed-simd)', { skip: skip || RELAXED }, () => {
  // the child runs this file's tests and exits non-zero when one fails (execFileSync then throws with its output)
  const env: NodeJS.ProcessEnv = { ...process.env, WASM_TEST_RELAXED: '1' };
  delete env.NODE_TEST_CONTEXT;
  const out = execFileSync(process.execPath, ['--experimental-wasm-relaxed-simd', '--test-reporter=dot', fileURLToPath(import.meta.url)], {
    env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'],
  });
  assert.match(out, /\.{14}/, out);
});
