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
