/** Op-against-reference checks shared by the fast backends' tests (native-kernels, wasm-kernels). */
import assert from 'node:assert/strict';
import { createRefBackend } from '../../src/kernels/ref.js';
import { makeRopeTable, type Backend } from '../../src/kernels/backend.js';
import { Rng } from '../../src/util/rng.js';
import { randn, assertClose } from './native.js';

const ref = createRefBackend('f32');

/** Embedding and its backward (repeated tokens). */
export function checkEmbedding(be: Backend): void {
  const rng = new Rng(4);
  for (const [V, dim, n] of [[11, 5, 17], [300, 288, 64], [50, 130, 1]]) {
    const table = randn(rng, V * dim);
    const tokens = Int32Array.from({ length: n }, () => rng.int(Math.min(V, 7)));
    const a = new Float32Array(n * dim), b = new Float32Array(n * dim);
    be.embedding(a, table, tokens, dim);
    ref.embedding(b, table, tokens, dim);
    assert.deepEqual(a, b);
    const dout = randn(rng, n * dim);
    const init = randn(rng, V * dim);
    const c = Float32Array.from(init), d = Float32Array.from(init);
    be.embeddingBackward(c, dout, tokens, dim);
    ref.embeddingBackward(d, dout, tokens, dim);
    assertClose(c, d, 1e-6, `embeddingBackward V=${V} dim=${dim}`);
  }
}

/** Rmsnorm forward and backward (accumulating dx, dw). */
export function checkRmsnorm(be: Backend): void {
  const rng = new Rng(5);
  for (const [rows, dim] of [[1, 1], [3, 7], [65, 288], [300, 130], [2, 1000]]) {
    const x = randn(rng, rows * dim, 3), w = randn(rng, dim);
    const o1 = new Float32Array(rows * dim), o2 = new Float32Array(rows * dim);
    const r1 = new Float32Array(rows), r2 = new Float32Array(rows);
    be.rmsnorm(o1, r1, x, w, rows, dim, 1e-5);
    ref.rmsnorm(o2, r2, x, w, rows, dim, 1e-5);
    assertClose(o1, o2, 1e-6, `rmsnorm out ${rows}x${dim}`);
    assertClose(r1, r2, 1e-6, `rmsnorm rstd ${rows}x${dim}`);
    const dout = randn(rng, rows * dim);
    const dx0 = randn(rng, rows * dim), dw0 = randn(rng, dim);
    const dx1 = Float32Array.from(dx0), dx2 = Float32Array.from(dx0), dw1 = Float32Array.from(dw0), dw2 = Float32Array.from(dw0);
    be.rmsnormBackward(dx1, dw1, dout, x, w, r2, rows, dim);
    ref.rmsnormBackward(dx2, dw2, dout, x, w, r2, rows, dim);
    assertClose(dx1, dx2, 1e-5, `rmsnormBackward dx ${rows}x${dim}`);
    assertClose(dw1, dw2, 1e-5, `rmsnormBackward dw ${rows}x${dim}`);
  }
}

/** Rope forward and backward with position offsets. */
export function checkRope(be: Backend): void {
  const rng = new Rng(6);
  for (const [B, T, H, hd, off] of [[1, 1, 1, 2, 0], [2, 9, 3, 8, 5], [2, 70, 6, 48, 0], [1, 3, 2, 64, 250]]) {
    const table = makeRopeTable(hd, 256, 10000);
    const x = randn(rng, B * T * H * hd);
    const a = Float32Array.from(x), b = Float32Array.from(x);
    be.rope(a, B, T, H, table, off);
    ref.rope(b, B, T, H, table, off);
    assertClose(a, b, 1e-6, `rope ${B},${T},${H},${hd}+${off}`);
    be.ropeBackward(a, B, T, H, table, off);
    ref.ropeBackward(b, B, T, H, table, off);
    assertClose(a, b, 1e-6, `ropeBackward ${B},${T},${H},${hd}+${off}`);
    assertClose(a, x, 1e-5, 'rope then its backward is the identity');
  }
}

/** swiglu and its backward (accumulating), add (aliased output), scale, sumSquares; extreme gates stay finite. */
export function checkElementwise(be: Backend): void {
  const rng = new Rng(9);
  for (const n of [1, 7, 1000, 100003]) {
    const a = randn(rng, n, 4), b = randn(rng, n);
    const o1 = new Float32Array(n), o2 = new Float32Array(n);
    be.swiglu(o1, a, b, n);
    ref.swiglu(o2, a, b, n);
    assertClose(o1, o2, 1e-6, `swiglu n=${n}`);
    const dout = randn(rng, n);
    const da1 = new Float32Array(n).fill(5), db1 = new Float32Array(n).fill(5), da2 = new Float32Array(n), db2 = new Float32Array(n);
    be.swigluBackward(da1, db1, dout, a, b, n);
    ref.swigluBackward(da2, db2, dout, a, b, n);
    assertClose(da1, da2, 1e-6, `swigluBackward da n=${n}`);
    assertClose(db1, db2, 1e-6, `swigluBackward db n=${n}`);
    const s1 = Float32Array.from(a), s2 = Float32Array.from(a);
    be.add(s1, s1, b, n); // out aliases a
    ref.add(s2, s2, b, n);
    assert.deepEqual(s1, s2);
    be.scale(s1, 0.37, n);
    ref.scale(s2, 0.37, n);
    assert.deepEqual(s1, s2);
    const ss1 = be.sumSquares(a, n), ss2 = ref.sumSquares(a, n);
    assert.ok(Math.abs(ss1 - ss2) <= 1e-12 * ss2, `sumSquares n=${n}: ${ss1} vs ${ss2}`);
  }
  // extreme gate inputs stay finite
  const a = Float32Array.from([-1000, -90, -30, 0, 30, 90, 1000]), b = new Float32Array(7).fill(1);
  const o = new Float32Array(7);
  be.swiglu(o, a, b, 7);
  assert.ok(o.every(Number.isFinite));
}

/** crossEntropy: loss, gradient (aliasing the logits), ignored rows, vocabularies of every remainder. */
export function checkCrossEntropy(be: Backend): void {
  const rng = new Rng(10);
  for (const [rows, V] of [[1, 1], [5, 7], [33, 1000], [4, 32000]]) {
    const logits = randn(rng, rows * V, 3);
    const targets = Int32Array.from({ length: rows }, () => rng.int(V));
    if (rows > 2) targets[1] = -1;
    const l1 = be.crossEntropy(logits, targets, rows, V, null, 0);
    const l2 = ref.crossEntropy(logits, targets, rows, V, null, 0);
    assert.ok(Math.abs(l1 - l2) <= 1e-5 * Math.max(1, Math.abs(l2)), `loss ${rows}x${V}: ${l1} vs ${l2}`);
    const a = Float32Array.from(logits), b = Float32Array.from(logits);
    const l3 = be.crossEntropy(a, targets, rows, V, a, 0.25);
    const l4 = ref.crossEntropy(b, targets, rows, V, b, 0.25);
    assert.ok(Math.abs(l3 - l4) <= 1e-5 * Math.max(1, Math.abs(l4)));
    assertClose(a, b, 1e-5, `dlogits ${rows}x${V}`);
  }
}
