/** Every native kernel against the ref backend on random shapes (odd sizes, T=1, GQA, long sequences). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createRefBackend } from '../src/kernels/ref.js';
import { makeRopeTable, type AttentionShape } from '../src/kernels/backend.js';
import { Rng } from '../src/util/rng.js';
import { f16ToF32, f32ToF16 } from '../src/util/half.js';
import { skip, native, randn, assertClose, forEachSimd } from './helpers/native.js';
import { checkEmbedding, checkRmsnorm, checkRope, checkElementwise, checkCrossEntropy } from './helpers/backend-checks.js';

const ref = createRefBackend('f32');

const MM_SHAPES: [number, number, number][] = [
  [1, 1, 1], [1, 288, 770], [5, 20, 5000], [33, 100, 130], [50, 20, 1000], [64, 65, 64], [7, 13, 5], [33, 65, 17], [6, 16, 32], [100, 300, 257], [130, 288, 768], [64, 1, 9], [3, 517, 2],
  // few rows (the decode GEMV path): K, N not multiples of the vector width or of the 8-row blocks, K < one vector
  [1, 15, 7], [1, 17, 9], [2, 31, 13], [3, 100, 33], [4, 300, 47], [1, 288, 2001], [2, 768, 289], [4, 1, 3], [3, 16, 8], [1, 1376, 515],
  // batched decode: 5–16 rows on the GEMV path (pairs of x rows and a last odd one); 17–64 rows when W is large
  [9, 33, 41], [16, 130, 19], [13, 64, 8], [17, 1025, 2049],
  // packed paths on both operands (> 64 rows and columns): K not a multiple of the 8x8 transposes, panel counts odd
  // and even, partial panels and partial tiles in both directions
  [150, 203, 90], [96, 45, 200], [77, 7, 129], [200, 600, 131],
];

test('matmul, matmulBackwardInput, matmulBackwardWeight match ref on every SIMD path', { skip }, () => {
  const be = native();
  const rng = new Rng(1);
  forEachSimd(be, (level) => {
    for (const [M, K, N] of MM_SHAPES) {
      const x = randn(rng, M * K), w = randn(rng, N * K), dy = randn(rng, M * N);
      const tag = `${level} M=${M} K=${K} N=${N}`;
      for (const acc of [false, true]) {
        const init = randn(rng, M * N);
        const a = Float32Array.from(init), b = Float32Array.from(init);
        be.matmul(a, x, w, M, K, N, acc);
        ref.matmul(b, x, w, M, K, N, acc);
        assertClose(a, b, 2e-6 * Math.sqrt(K), `matmul acc=${acc} ${tag}`);
        const init2 = randn(rng, M * K);
        const c = Float32Array.from(init2), d = Float32Array.from(init2);
        be.matmulBackwardInput(c, dy, w, M, K, N, acc);
        ref.matmulBackwardInput(d, dy, w, M, K, N, acc);
        assertClose(c, d, 2e-6 * Math.sqrt(N), `matmulBackwardInput acc=${acc} ${tag}`);
      }
      const init3 = randn(rng, N * K);
      const e = Float32Array.from(init3), f = Float32Array.from(init3);
      be.matmulBackwardWeight(e, dy, x, M, K, N);
      ref.matmulBackwardWeight(f, dy, x, M, K, N);
      assertClose(e, f, 2e-6 * Math.sqrt(M), `matmulBackwardWeight ${tag}`);
    }
  });
});

test('batched GEMV: each of 3-16 x rows gets, bit for bit, the products of that row alone (a batch decodes what each sequence alone decodes)', { skip }, () => {
  const be = native();
  const rng = new Rng(12);
  forEachSimd(be, (level) => {
    for (const [N, K] of [[37, 288], [300, 37], [515, 512], [9, 16], [130, 1000]] as const) {
      const w = randn(rng, N * K);
      for (const M of [3, 4, 5, 7, 8, 9, 13, 16]) { // the GEMV path's rows (more go through the packed SGEMM)
        const x = randn(rng, M * K);
        for (const acc of [false, true]) {
          const init = randn(rng, M * N);
          const all = Float32Array.from(init);
          be.matmul(all, x, w, M, K, N, acc);
          for (let i = 0; i < M; i++) {
            const one = Float32Array.from(init.subarray(i * N, (i + 1) * N));
            be.matmul(one, x.subarray(i * K, (i + 1) * K), w, 1, K, N, acc);
            assert.deepEqual(all.subarray(i * N, (i + 1) * N), one, `${level} N=${N} K=${K} M=${M} row ${i} acc=${acc}`);
          }
        }
      }
    }
  });
});

test('matmul leaves memory outside the output untouched and handles K = 0', { skip }, () => {
  const be = native();
  const rng = new Rng(2);
  const M = 13, K = 21, N = 19;
  const x = randn(rng, M * K), w = randn(rng, N * K);
  const big = new Float32Array(M * N + 50).fill(7);
  be.matmul(big.subarray(10, 10 + M * N), x, w, M, K, N);
  for (let i = 0; i < 10; i++) assert.equal(big[i], 7);
  for (let i = 10 + M * N; i < big.length; i++) assert.equal(big[i], 7);
  const out = new Float32Array(4).fill(3);
  be.matmul(out, new Float32Array(0), new Float32Array(0), 2, 0, 2);
  assert.deepEqual([...out], [0, 0, 0, 0]);
});

test('results do not depend on the thread count; the pool can be resized', { skip }, () => {
  const be = native();
  const rng = new Rng(3);
  const M = 300, K = 288, N = 200;
  const x = randn(rng, M * K), w = randn(rng, N * K), wBig = randn(rng, 2000 * K);
  const T = 100, s: AttentionShape = { batch: 2, seq: T, nHeads: 4, nKvHeads: 2, headDim: 8 };
  const q = randn(rng, 2 * T * 32), k = randn(rng, 2 * T * 16), v = randn(rng, 2 * T * 16);
  const run = () => {
    const out = new Float32Array(M * N);
    be.matmul(out, x, w, M, K, N);
    const att = new Float32Array(2 * T * 32), lse = new Float32Array(2 * 4 * T);
    be.attention(att, lse, q, k, v, s);
    // few rows against a weight split over the pool (decode GEMV)
    const few = new Float32Array(4 * 2000);
    for (let m = 1; m <= 4; m++) be.matmul(few.subarray(0, m * 2000), x.subarray(0, m * K), wBig, m, K, 2000, m > 2);
    const cached = new Float32Array(3 * 32);
    be.attentionCached(cached, q.subarray(0, 3 * 32), k, v, 3, 60, 4, 2, 8);
    return [out, att, lse, be.sumSquares(x, M * K), few, cached] as const;
  };
  const dflt = be.threads();
  try {
    const a = run();
    assert.equal(be.setThreads(1), 1);
    const b = run();
    assert.equal(be.setThreads(3), 3);
    const c = run();
    for (const r of [b, c]) {
      assert.deepEqual(r[0], a[0]);
      assert.deepEqual(r[4], a[4]);
      assert.deepEqual(r[5], a[5]);
      assert.deepEqual(r[1], a[1]);
      assert.deepEqual(r[2], a[2]);
      assert.equal(r[3], a[3]);
    }
  } finally {
    be.setThreads(0);
  }
  assert.equal(be.threads(), dflt);
});

test('LLAMA_TS_THREADS sets the pool size', { skip }, () => {
  const code = "import('./dist/src/kernels/native.js').then(m => console.log(m.createNativeBackend().threads()))";
  const out = execFileSync(process.execPath, ['-e', code], { env: { ...process.env, LLAMA_TS_THREADS: '3' }, encoding: 'utf8' });
  assert.equal(out.trim(), '3');
});

test('embedding and its backward (repeated tokens)', { skip }, () => checkEmbedding(native()));

test('rmsnorm forward and backward (accumulating dx, dw)', { skip }, () => checkRmsnorm(native()));

test('rope forward and backward with position offsets', { skip }, () => checkRope(native()));

const ATT_SHAPES: AttentionShape[] = [
  { batch: 1, seq: 1, nHeads: 1, nKvHeads: 1, headDim: 2 },
  { batch: 2, seq: 1, nHeads: 4, nKvHeads: 2, headDim: 8 },
  { batch: 2, seq: 5, nHeads: 4, nKvHeads: 4, headDim: 6 },
  { batch: 1, seq: 70, nHeads: 4, nKvHeads: 1, headDim: 6 },
  { batch: 2, seq: 129, nHeads: 2, nKvHeads: 2, headDim: 16 },
  { batch: 1, seq: 64, nHeads: 6, nKvHeads: 3, headDim: 48 },
  { batch: 1, seq: 200, nHeads: 2, nKvHeads: 1, headDim: 64 },
  { batch: 1, seq: 1024, nHeads: 2, nKvHeads: 1, headDim: 16 },
];

test('attention forward and backward match ref on every SIMD path (T=1, GQA, odd tile edges, T=1024)', { skip }, () => {
  const be = native();
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
    forEachSimd(be, (level) => {
      const tag = `${level} ${JSON.stringify(s)}`;
      const o1 = new Float32Array(nq), l1 = new Float32Array(B * H * T);
      be.attention(o1, l1, q, k, v, s);
      assertClose(o1, o2, 2e-5, `attention out ${tag}`);
      assertClose(l1, l2, 2e-6, `attention lse ${tag}`);
      const g1 = [new Float32Array(nq).fill(9), new Float32Array(nk).fill(9), new Float32Array(nk).fill(9)];
      be.attentionBackward(g1[0], g1[1], g1[2], dout, q, k, v, o2, l2, s);
      assertClose(g1[0], g2[0], 5e-5, `attentionBackward dq ${tag}`, undefined, 1);
      assertClose(g1[1], g2[1], 5e-5, `attentionBackward dk ${tag}`, undefined, 1);
      assertClose(g1[2], g2[2], 5e-5, `attentionBackward dv ${tag}`, undefined, 1);
    });
  }
});

test('attentionCached (n query rows over a KV cache) matches ref on every SIMD path; ref agrees with attention', { skip }, () => {
  const be = native();
  const rng = new Rng(11);
  // [n, pos, nHeads, nKvHeads, headDim]: decode (n = 1), chunks, GQA, odd head dims, long caches; prefill chunks of
  // 64+ rows (the tiled path) on an empty cache and after one, partial tiles in both directions
  const shapes: [number, number, number, number, number][] = [
    [1, 0, 6, 6, 48], [1, 95, 8, 8, 64], [3, 10, 4, 2, 8], [5, 0, 4, 1, 7], [17, 40, 2, 2, 33], [1, 300, 6, 3, 48], [2, 1, 1, 1, 1], [1, 20, 2, 2, 130], [2, 9, 3, 1, 80],
    [64, 0, 4, 2, 16], [70, 30, 6, 3, 48], [130, 100, 2, 1, 33], [65, 64, 1, 1, 5],
  ];
  forEachSimd(be, (level) => {
    for (const [n, pos, H, KV, hd] of shapes) {
      const q = randn(rng, n * H * hd), k = randn(rng, (pos + n) * KV * hd), v = randn(rng, (pos + n) * KV * hd);
      const a = new Float32Array(n * H * hd).fill(9), b = new Float32Array(n * H * hd);
      be.attentionCached(a, q, k, v, n, pos, H, KV, hd);
      ref.attentionCached(b, q, k, v, n, pos, H, KV, hd);
      assertClose(a, b, 2e-5, `attentionCached ${level} n=${n} pos=${pos} H=${H} KV=${KV} hd=${hd}`);
    }
  });
  // over a whole sequence (pos = 0, n = T) it is causal attention
  const T = 37, s: AttentionShape = { batch: 1, seq: T, nHeads: 4, nKvHeads: 2, headDim: 16 };
  const q = randn(rng, T * 64), k = randn(rng, T * 32), v = randn(rng, T * 32);
  const o1 = new Float32Array(T * 64), o2 = new Float32Array(T * 64), lse = new Float32Array(4 * T);
  ref.attention(o1, lse, q, k, v, s);
  ref.attentionCached(o2, q, k, v, T, 0, 4, 2, 16);
  assertClose(o2, o1, 1e-6, 'attentionCached ref vs attention ref');
  const f = (len: number) => new Float32Array(len);
  assert.throws(() => be.attentionCached(f(8), f(8), f(15), f(16), 1, 1, 1, 1, 8), /attentionCached: k has 15 elements, shape needs 16/);
  assert.throws(() => ref.attentionCached(f(8), f(8), f(15), f(16), 1, 1, 1, 1, 8), /attentionCached: k has 15 elements, shape needs 16/);
  assert.throws(() => be.attentionCached(f(24), f(24), f(32), f(32), 1, 1, 3, 2, 8), /not divisible/);
});

test('attentionCached: each head\'s output is the same whatever the thread count (one row: the KV heads split into a group per thread; a 70-row prefill chunk: query tiles)', { skip }, () => {
  const be = native();
  const rng = new Rng(13);
  const dflt = be.threads();
  try {
    forEachSimd(be, (level) => {
      // [n, pos, nHeads, nKvHeads, headDim]: one row (groups = threads up to KV), GQA, a tail lane, two rows
      for (const [n, pos, H, KV, hd] of [[1, 70, 6, 6, 48], [1, 33, 8, 4, 20], [1, 5, 12, 3, 64], [2, 40, 4, 4, 17], [70, 30, 4, 2, 20]] as const) {
        const q = randn(rng, n * H * hd), k = randn(rng, (pos + n) * KV * hd), v = randn(rng, (pos + n) * KV * hd);
        const outs = [1, 2, 3, 5].map((t) => {
          be.setThreads(t);
          const o = new Float32Array(n * H * hd);
          be.attentionCached(o, q, k, v, n, pos, H, KV, hd);
          return o;
        });
        for (let i = 1; i < outs.length; i++) assert.deepEqual(outs[i], outs[0], `${level} n=${n} pos=${pos} H=${H} KV=${KV} hd=${hd}, thread count ${[1, 2, 3, 5][i]}`);
      }
    });
  } finally {
    be.setThreads(dflt);
  }
});

test('attentionCachedF16 (a head-major half cache): rounds the new rows into it as ref does (same bits) and attends as attentionCached over the widened rows, every SIMD path', { skip }, () => {
  const be = native();
  const rng = new Rng(12);
  // [n, pos, nHeads, nKvHeads, headDim, maxSeq]
  const shapes: [number, number, number, number, number, number][] = [
    [1, 0, 6, 6, 48, 4], [1, 95, 8, 8, 64, 100], [3, 10, 4, 2, 8, 13], [5, 0, 4, 1, 7, 9], [17, 40, 2, 2, 33, 64], [1, 300, 6, 3, 48, 301], [2, 9, 3, 1, 80, 11], [1, 20, 2, 2, 130, 30],
  ];
  forEachSimd(be, (level) => {
    for (const [n, pos, H, KV, hd, maxSeq] of shapes) {
      const tag = `${level} n=${n} pos=${pos} H=${H} KV=${KV} hd=${hd}`;
      const q = randn(rng, n * H * hd), k = randn(rng, n * KV * hd), v = randn(rng, n * KV * hd);
      // earlier positions: random half values (|x| < 4) written in the head-major layout, then the same caches on both sides
      const kc = new Uint16Array(KV * maxSeq * hd), vc = new Uint16Array(KV * maxSeq * hd);
      for (let g = 0; g < KV; g++) {
        for (let j = 0; j < pos; j++) {
          for (let d = 0; d < hd; d++) kc[(g * maxSeq + j) * hd + d] = f32ToF16(4 * (rng.next() - 0.5)), vc[(g * maxSeq + j) * hd + d] = f32ToF16(4 * (rng.next() - 0.5));
        }
      }
      const kc2 = kc.slice(), vc2 = vc.slice();
      const a = new Float32Array(n * H * hd).fill(9), b = new Float32Array(n * H * hd);
      be.attentionCachedF16(a, q, k, v, kc, vc, n, pos, H, KV, hd, maxSeq);
      ref.attentionCachedF16(b, q, k, v, kc2, vc2, n, pos, H, KV, hd, maxSeq);
      assert.deepEqual(kc, kc2, `kc ${tag}`);
      assert.deepEqual(vc, vc2, `vc ${tag}`);
      assertClose(a, b, 2e-5, `attentionCachedF16 ${tag}`);
      // a second implementation: attentionCached on the widened cache rows in the row-major layout
      const kw = KV * hd, kf = new Float32Array((pos + n) * kw), vf = new Float32Array((pos + n) * kw);
      for (let j = 0; j < pos + n; j++) {
        for (let g = 0; g < KV; g++) {
          for (let d = 0; d < hd; d++) kf[j * kw + g * hd + d] = f16ToF32(kc[(g * maxSeq + j) * hd + d]), vf[j * kw + g * hd + d] = f16ToF32(vc[(g * maxSeq + j) * hd + d]);
        }
      }
      for (let i = 0; i < n * kw; i++) assert.equal(kf[pos * kw + i], f16ToF32(f32ToF16(k[i])), `new key rows rounded to half ${tag}`);
      const c = new Float32Array(n * H * hd);
      be.attentionCached(c, q, kf, vf, n, pos, H, KV, hd);
      assertClose(a, c, 2e-5, `attentionCachedF16 vs attentionCached on the widened rows ${tag}`);
    }
  });
  const f = (len: number) => new Float32Array(len), u = (len: number) => new Uint16Array(len);
  for (const b of [be, ref]) {
    assert.throws(() => b.attentionCachedF16(f(8), f(8), f(8), f(8), u(15), u(16), 1, 1, 1, 1, 8, 2), /attentionCachedF16: kc has 15 elements, shape needs 16/);
    assert.throws(() => b.attentionCachedF16(f(8), f(8), f(8), f(8), u(16), u(16), 1, 2, 1, 1, 8, 2), /exceeds the cache's 2 positions/);
  }
});

test('attention at T=4096 runs (no T×T buffer) and the first rows match ref', { skip }, () => {
  const be = native();
  const rng = new Rng(8);
  const s: AttentionShape = { batch: 1, seq: 4096, nHeads: 2, nKvHeads: 1, headDim: 16 };
  const nq = 4096 * 32, nk = 4096 * 16;
  const q = randn(rng, nq), k = randn(rng, nk), v = randn(rng, nk);
  const o = new Float32Array(nq), l = new Float32Array(2 * 4096);
  be.attention(o, l, q, k, v, s);
  const g = [new Float32Array(nq), new Float32Array(nk), new Float32Array(nk)];
  be.attentionBackward(g[0], g[1], g[2], randn(rng, nq), q, k, v, o, l, s);
  for (const a of [o, l, ...g]) assert.ok(a.every(Number.isFinite));
  // causality: the first 100 rows only see the first 100 keys, so a 100-token ref run must agree on them
  const T = 100, s2 = { ...s, seq: T };
  const pick = (a: Float32Array, w: number) => a.slice(0, T * w);
  const o2 = new Float32Array(T * 32), l2 = new Float32Array(2 * T);
  ref.attention(o2, l2, pick(q, 32), pick(k, 16), pick(v, 16), s2);
  assertClose(o.subarray(0, T * 32), o2, 2e-5, 'attention T=4096 first rows');
});

test('swiglu, add, scale, sumSquares', { skip }, () => checkElementwise(native()));

test('crossEntropy: loss, gradient (aliasing logits), ignored rows, vocab not a multiple of 16', { skip }, () => checkCrossEntropy(native()));

test('logSumExp and softmaxScaled match ref (vocab not a multiple of 16, output aliasing the input)', { skip }, () => {
  const be = native();
  const rng = new Rng(12);
  for (const [rows, V] of [[1, 1], [5, 7], [33, 1000], [3, 16000]]) {
    const x = randn(rng, rows * V, 3);
    const l1 = new Float32Array(rows), l2 = new Float32Array(rows);
    be.logSumExp(l1, x, rows, V);
    ref.logSumExp(l2, x, rows, V);
    assertClose(l1, l2, 1e-6, `logSumExp ${rows}x${V}`);
    const a = Float32Array.from(x), b = Float32Array.from(x);
    be.softmaxScaled(a, a, l2, rows, V, 0.5);
    ref.softmaxScaled(b, b, l2, rows, V, 0.5);
    assertClose(a, b, 1e-5, `softmaxScaled ${rows}x${V}`);
  }
  assert.throws(() => be.softmaxScaled(new Float32Array(6), new Float32Array(6), new Float32Array(1), 2, 3, 1), RangeError);
});

test('adamw matches ref', { skip }, () => {
  const be = native();
  const rng = new Rng(11);
  const n = 70001;
  const p = randn(rng, n), g = randn(rng, n), m = randn(rng, n, 0.1), v = new Float32Array(n).map(() => Math.abs(rng.normal()) * 0.01);
  const [p1, m1, v1] = [p, m, v].map((a) => Float32Array.from(a));
  const [p2, m2, v2] = [p, m, v].map((a) => Float32Array.from(a));
  for (const step of [1, 2, 10]) {
    const h = { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step };
    be.adamw(p1, g, m1, v1, n, h);
    ref.adamw(p2, g, m2, v2, n, h);
  }
  assertClose(p1, p2, 1e-6, 'adamw p');
  assertClose(m1, m2, 1e-6, 'adamw m');
  assertClose(v1, v2, 1e-6, 'adamw v');
});

test('shape mismatches and bad inputs throw descriptive errors', { skip }, () => {
  const be = native();
  const f = (n: number) => new Float32Array(n);
  assert.throws(() => be.matmul(f(5), f(6), f(6), 2, 3, 3), /matmul: out has 5 elements, shape needs 6/);
  assert.throws(() => be.matmul(f(6), f(5), f(9), 2, 3, 3), /matmul: x has 5 elements, shape needs 6/);
  assert.throws(() => be.matmulBackwardInput(f(6), f(6), f(8), 2, 3, 3), /matmulBackwardInput: w has 8 elements, shape needs 9/);
  assert.throws(() => be.matmulBackwardWeight(f(8), f(6), f(6), 2, 3, 3), /matmulBackwardWeight: dw has 8 elements/);
  assert.throws(() => be.matmul(f(6), f(6), f(9), 2.5, 3, 3), /matmul: bad size 2.5 for M/);
  assert.throws(() => be.matmul(f(6), f(6), f(9), -1, 3, 3), /matmul: bad size -1 for M/);
  assert.throws(() => be.matmul(new Float64Array(6), f(6), f(9), 2, 3, 3), (e: Error) => e instanceof TypeError && /out must be a Float32Array/.test(e.message));
  assert.throws(() => be.embedding(f(6), f(6), Int32Array.from([0, 3]), 3), /embedding: token id 3 at position 1 is outside the vocabulary \(0..1\)/);
  assert.throws(() => be.embeddingBackward(f(6), f(6), Int32Array.from([-1, 0]), 3), /embeddingBackward: token id -1/);
  assert.throws(() => be.rmsnorm(f(6), f(1), f(6), f(3), 2, 3, 1e-5), /rmsnorm: rstd has 1 elements, shape needs 2/);
  const table = makeRopeTable(4, 8, 10000);
  assert.throws(() => be.rope(f(4 * 9), 1, 9, 1, table), /rope: positions 0..8 exceed the rope table \(8\)/);
  assert.throws(() => be.ropeBackward(f(4 * 3), 1, 4, 1, table), /ropeBackward: x has 12 elements, shape needs 16/);
  const s = { batch: 1, seq: 4, nHeads: 3, nKvHeads: 2, headDim: 2 };
  assert.throws(() => be.attention(f(24), f(12), f(24), f(16), f(16), s), /attention: nHeads 3 not divisible by nKvHeads 2/);
  const s2 = { batch: 1, seq: 4, nHeads: 2, nKvHeads: 1, headDim: 2 };
  assert.throws(() => be.attention(f(16), f(8), f(16), f(8), f(7), s2), /attention: v has 7 elements, shape needs 8/);
  assert.throws(() => be.attentionBackward(f(16), f(8), f(8), f(16), f(16), f(8), f(8), f(16), f(7), s2), /attentionBackward: lse has 7 elements/);
  assert.throws(() => be.crossEntropy(f(6), Int32Array.from([1, 3]), 2, 3, null, 1), /crossEntropy: target 3 at row 1 is outside the vocabulary \(3\)/);
  assert.throws(() => be.crossEntropy(f(6), Int32Array.from([1]), 2, 3, null, 1), /crossEntropy: targets has 1 elements, shape needs 2/);
  assert.throws(() => be.swiglu(f(3), f(4), f(4), 4), /swiglu: out has 3 elements/);
  assert.throws(() => be.adamw(f(4), f(4), f(3), f(4), 4, { lr: 1, beta1: 0.9, beta2: 0.9, eps: 1e-8, weightDecay: 0, step: 1 }), /adamw: m has 3 elements/);
  assert.throws(() => be.sumSquares(f(3), 4), /sumSquares: x has 3 elements/);
  assert.throws(() => be.scale(f(3), 2, 4), /scale: x has 3 elements/);
  assert.throws(() => be.add(f(4), f(4), f(2), 4), /add: b has 2 elements/);
});
