/** Every reference kernel's backward against central finite differences in float64. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRefBackend } from '../src/kernels/ref.js';
import { makeRopeTable } from '../src/kernels/backend.js';
import { Rng } from '../src/util/rng.js';
import { checkGrad, dot, randn } from './helpers/gradcheck.js';

const be = createRefBackend('f64');

test('matmul backward (input and weight)', () => {
  const rng = new Rng(1);
  const [M, K, N] = [5, 7, 6];
  const x = randn(M * K, rng), w = randn(N * K, rng), r = randn(M * N, rng);
  const out = new Float64Array(M * N);
  const L = () => (be.matmul(out, x, w, M, K, N), dot(out, r));
  const dx = new Float64Array(M * K), dw = new Float64Array(N * K);
  be.matmulBackwardInput(dx, r, w, M, K, N);
  be.matmulBackwardWeight(dw, r, x, M, K, N);
  checkGrad('dx', x, dx, L, rng);
  checkGrad('dw', w, dw, L, rng);
  // accumulate flags add onto what is there
  const dx2 = new Float64Array(M * K).fill(1);
  be.matmulBackwardInput(dx2, r, w, M, K, N, true);
  for (let i = 0; i < dx.length; i++) assert.ok(Math.abs(dx2[i] - dx[i] - 1) < 1e-12);
});

test('embedding backward scatters and accumulates repeated tokens', () => {
  const rng = new Rng(2);
  const [V, D] = [6, 4];
  const table = randn(V * D, rng);
  const tokens = Int32Array.from([1, 3, 1, 0, 5]);
  const r = randn(tokens.length * D, rng);
  const out = new Float64Array(tokens.length * D);
  const L = () => (be.embedding(out, table, tokens, D), dot(out, r));
  const dt = new Float64Array(V * D);
  be.embeddingBackward(dt, r, tokens, D);
  checkGrad('dtable', table, dt, L, rng);
  assert.throws(() => be.embedding(out, table, Int32Array.from([9]), D), /outside the vocabulary/);
});

test('rmsnorm backward', () => {
  const rng = new Rng(3);
  const [rows, D] = [4, 8];
  const x = randn(rows * D, rng), w = randn(D, rng), r = randn(rows * D, rng);
  const out = new Float64Array(rows * D), rstd = new Float64Array(rows);
  const L = () => (be.rmsnorm(out, rstd, x, w, rows, D, 1e-5), dot(out, r));
  L();
  const dx = new Float64Array(rows * D), dw = new Float64Array(D);
  be.rmsnormBackward(dx, dw, r, x, w, rstd, rows, D);
  checkGrad('dx', x, dx, L, rng);
  checkGrad('dw', w, dw, L, rng);
});

test('rope backward is the inverse rotation; rope preserves norms', () => {
  const rng = new Rng(4);
  const [B, T, H, hd] = [2, 5, 3, 8];
  const table = makeRopeTable(hd, 16, 10000);
  const x = randn(B * T * H * hd, rng), r = randn(x.length, rng);
  const tmp = new Float64Array(x.length);
  const L = () => (tmp.set(x), be.rope(tmp, B, T, H, table), dot(tmp, r));
  const dx = Float64Array.from(r);
  be.ropeBackward(dx, B, T, H, table);
  checkGrad('dx', x, dx, L, rng);
  tmp.set(x);
  be.rope(tmp, B, T, H, table);
  assert.ok(Math.abs(dot(tmp, tmp) - dot(x, x)) < 1e-9);
  // position 0 is the identity; position offset shifts the angle
  const one = randn(H * hd, rng);
  const a = Float64Array.from(one);
  be.rope(a, 1, 1, H, table, 0);
  assert.deepEqual(Array.from(a), Array.from(one));
});

for (const [H, KV] of [[4, 4], [4, 2], [6, 1]]) {
  test(`attention backward (heads ${H}, kv heads ${KV})`, () => {
    const rng = new Rng(5 + H + KV);
    const [B, T, hd] = [2, 5, 4];
    const s = { batch: B, seq: T, nHeads: H, nKvHeads: KV, headDim: hd };
    const q = randn(B * T * H * hd, rng), k = randn(B * T * KV * hd, rng), v = randn(B * T * KV * hd, rng);
    const r = randn(B * T * H * hd, rng);
    const out = new Float64Array(q.length), lse = new Float64Array(B * H * T);
    const L = () => (be.attention(out, lse, q, k, v, s), dot(out, r));
    L();
    const dq = new Float64Array(q.length), dk = new Float64Array(k.length), dv = new Float64Array(v.length);
    be.attentionBackward(dq, dk, dv, r, q, k, v, out, lse, s);
    checkGrad('dq', q, dq, L, rng);
    checkGrad('dk', k, dk, L, rng);
    checkGrad('dv', v, dv, L, rng);
  });
}

test('attention is causal: a later token never changes an earlier output', () => {
  const rng = new Rng(9);
  const [B, T, H, hd] = [1, 6, 2, 4];
  const s = { batch: B, seq: T, nHeads: H, nKvHeads: H, headDim: hd };
  const q = randn(T * H * hd, rng), k = randn(T * H * hd, rng), v = randn(T * H * hd, rng);
  const out1 = new Float64Array(q.length), out2 = new Float64Array(q.length), lse = new Float64Array(H * T);
  be.attention(out1, lse, q, k, v, s);
  for (let i = 4 * H * hd; i < k.length; i++) { k[i] += 1; v[i] -= 2; }
  be.attention(out2, lse, q, k, v, s);
  for (let i = 0; i < 4 * H * hd; i++) assert.equal(out1[i], out2[i]);
  assert.notEqual(out1[5 * H * hd], out2[5 * H * hd]);
});

test('swiglu backward', () => {
  const rng = new Rng(6);
  const n = 20;
  const a = randn(n, rng, 2), b = randn(n, rng), r = randn(n, rng);
  const out = new Float64Array(n);
  const L = () => (be.swiglu(out, a, b, n), dot(out, r));
  const da = new Float64Array(n), db = new Float64Array(n);
  be.swigluBackward(da, db, r, a, b, n);
  checkGrad('da', a, da, L, rng);
  checkGrad('db', b, db, L, rng);
});

test('softmax cross-entropy gradient, ignored targets, large logits', () => {
  const rng = new Rng(7);
  const [rows, V] = [4, 11];
  const logits = randn(rows * V, rng, 3);
  const targets = Int32Array.from([3, -1, 10, 0]);
  const L = () => be.crossEntropy(logits, targets, rows, V, null, 0);
  const d = new Float64Array(rows * V);
  const loss = be.crossEntropy(logits, targets, rows, V, d, 1);
  assert.ok(Math.abs(loss - L()) < 1e-12);
  checkGrad('dlogits', logits, d, L, rng);
  for (let j = 0; j < V; j++) assert.equal(d[V + j], 0);
  const big = Float64Array.from({ length: V }, (_, j) => 1000 + j);
  const l = be.crossEntropy(big, Int32Array.from([V - 1]), 1, V, null, 0);
  assert.ok(Number.isFinite(l) && l > 0 && l < 1);
});

test('logSumExp gradient is softmaxScaled (the pieces of the vocabulary-parallel cross-entropy)', () => {
  const rng = new Rng(9);
  const [rows, V] = [3, 13];
  const x = randn(rows * V, rng, 3);
  const w = randn(rows, rng);
  const lse = new Float64Array(rows);
  const L = () => (be.logSumExp(lse, x, rows, V), dot(lse, w));
  L();
  const d = new Float64Array(rows * V);
  be.softmaxScaled(d, x, lse, rows, V, 1);
  for (let r = 0; r < rows; r++) for (let j = 0; j < V; j++) d[r * V + j] *= w[r]; // d/dx of w·lse = w_r·softmax
  checkGrad('dx', x, d, L, rng);
});

test('adamw matches a direct transcription of PyTorch AdamW', () => {
  const rng = new Rng(8);
  const n = 10;
  const p = randn(n, rng), g = randn(n, rng), m = randn(n, rng, 0.1), v = randn(n, rng).map((x) => x * x);
  const h = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step: 3 };
  const exp = Array.from(p, (pi, i) => {
    const mi = 0.9 * m[i] + 0.1 * g[i];
    const vi = 0.95 * v[i] + 0.05 * g[i] * g[i];
    const mhat = mi / (1 - 0.9 ** 3);
    const vhat = vi / (1 - 0.95 ** 3);
    return pi * (1 - 1e-2 * 0.1) - (1e-2 * mhat) / (Math.sqrt(vhat) + 1e-8);
  });
  be.adamw(p, g, m, v, n, h);
  for (let i = 0; i < n; i++) assert.ok(Math.abs(p[i] - exp[i]) < 1e-12);
});

test('kernels reject buffers too small for the shape', () => {
  const be32 = createRefBackend('f32');
  assert.throws(() => be32.matmul(new Float32Array(3), new Float32Array(4), new Float32Array(4), 2, 2, 2), /out has 3 elements, shape needs 4/);
  assert.throws(() => be32.swiglu(new Float32Array(2), new Float32Array(3), new Float32Array(3), 3), /swiglu/);
});
