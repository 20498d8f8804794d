/**
 * bf16 causal attention (attentionBf16, attentionBackwardBf16; --dtype bf16): the reference against the float
 * attention and float64 finite differences within bf16 tolerance, and every native bf16 path against the reference.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRefBackend } from '../src/kernels/ref.js';
import type { AttentionShape } from '../src/kernels/backend.js';
import { f32ToBf16, bf16ToF32 } from '../src/kernels/ops/bf16.js';
import { Rng } from '../src/util/rng.js';
import { skip, native, randn, forEachSimd } from './helpers/native.js';
import type { NativeBackend } from '../src/kernels/native.js';

const ref = createRefBackend('f32');
const f64 = createRefBackend('f64');

/**
 * [batch, seq, nHeads, nKvHeads, headDim]: GQA, T not a multiple of 64 (and below one tile), head dims 48, 64, 80 (past
 * one 64-column block) and 128 (the 7B-65B presets' head size: two whole blocks).
 */
const SHAPES: [number, number, number, number, number][] = [
  [1, 1, 1, 1, 2], [2, 7, 2, 1, 48], [1, 64, 2, 2, 64], [2, 70, 4, 2, 48], [1, 131, 2, 1, 64], [1, 150, 3, 3, 16], [1, 67, 2, 1, 80], [1, 70, 2, 1, 128],
];

function bf16(x: ArrayLike<number>): Uint16Array {
  return Uint16Array.from(x, (v) => f32ToBf16(v));
}
function widen(x: Uint16Array): Float64Array {
  return Float64Array.from(x, (b) => bf16ToF32(b));
}

/** ‖got − want‖₂ / ‖want‖₂. */
function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let e = 0, s = 0;
  for (let i = 0; i < want.length; i++) {
    e += (got[i] - want[i]) ** 2;
    s += want[i] ** 2;
  }
  return Math.sqrt(e / Math.max(s, 1e-30));
}

/** max |got − want| / max |want|. */
function maxErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let e = 0, s = 0;
  for (let i = 0; i < want.length; i++) {
    e = Math.max(e, Math.abs(got[i] - want[i]));
    s = Math.max(s, Math.abs(want[i]));
  }
  return e / Math.max(s, 1e-30);
}

interface Case {
  s: AttentionShape;
  q: Uint16Array;
  k: Uint16Array;
  v: Uint16Array;
  dout: Uint16Array;
}

function makeCase(rng: Rng, [B, T, H, KV, hd]: number[]): Case {
  const s = { batch: B, seq: T, nHeads: H, nKvHeads: KV, headDim: hd };
  // scores of a few units: the softmax neither flat nor one-hot
  return { s, q: bf16(randn(rng, B * T * H * hd, 1.5)), k: bf16(randn(rng, B * T * KV * hd)), v: bf16(randn(rng, B * T * KV * hd)), dout: bf16(randn(rng, B * T * H * hd)) };
}

/** The forward and backward of one implementation (the backward reads the forward's output rounded to bf16). */
function run(be: { attentionBf16: typeof ref.attentionBf16; attentionBackwardBf16: typeof ref.attentionBackwardBf16 }, c: Case) {
  const { batch: B, seq: T, nHeads: H, nKvHeads: KV, headDim: hd } = c.s;
  const out = new Float32Array(B * T * H * hd), lse = new Float32Array(B * H * T);
  be.attentionBf16(out, lse, c.q, c.k, c.v, c.s);
  const dq = new Float32Array(B * T * H * hd), dk = new Float32Array(B * T * KV * hd), dv = new Float32Array(B * T * KV * hd);
  dq.fill(NaN); // overwritten
  dk.fill(NaN);
  dv.fill(NaN);
  be.attentionBackwardBf16(dq, dk, dv, c.dout, c.q, c.k, c.v, bf16(out), lse, c.s);
  return { out, lse, dq, dk, dv };
}

test('ref bf16 attention vs the float attention on the same inputs: within bf16 rounding, forward and backward', () => {
  const rng = new Rng(21);
  for (const shape of SHAPES) {
    const c = makeCase(rng, shape);
    const { batch: B, seq: T, nHeads: H, nKvHeads: KV, headDim: hd } = c.s;
    const lo = run(ref, c);
    const q = widen(c.q), k = widen(c.k), v = widen(c.v), dout = widen(c.dout);
    const out = new Float64Array(B * T * H * hd), lse = new Float64Array(B * H * T);
    f64.attention(out, lse, q, k, v, c.s);
    const dq = new Float64Array(B * T * H * hd), dk = new Float64Array(B * T * KV * hd), dv = new Float64Array(B * T * KV * hd);
    f64.attentionBackward(dq, dk, dv, dout, q, k, v, out, lse, c.s);
    const tag = shape.join('x');
    // lse is the unrounded softmax's: only float32 differences
    assert.ok(maxErr(lo.lse, lse) < 1e-6, `${tag} lse`);
    // P (and dS) rounded to 8 mantissa bits: relative 2^-9 per value, averaging over the keys
    for (const [name, got, want] of [['out', lo.out, out], ['dq', lo.dq, dq], ['dk', lo.dk, dk], ['dv', lo.dv, dv]] as const) {
      const e = relErr(got, want);
      assert.ok(e < 6e-3, `${tag} ${name}: relative error ${e}`);
      if (T > 1) assert.ok(e > 1e-4, `${tag} ${name}: too close to the unrounded attention (${e}): P or dS not rounded?`);
    }
  }
});

test('ref bf16 attention backward vs float64 central differences of the unrounded attention (bf16 tolerance)', () => {
  const rng = new Rng(22);
  for (const shape of [[1, 9, 2, 1, 4], [2, 5, 2, 2, 6]]) {
    const c = makeCase(rng, shape);
    const { batch: B, seq: T, nHeads: H, headDim: hd } = c.s;
    const lo = run(ref, c);
    const q = widen(c.q), k = widen(c.k), v = widen(c.v), w = widen(c.dout);
    // L = Σ w ∘ attention(q, k, v), w = dout: its gradient is the backward's from dout
    const loss = () => {
      const out = new Float64Array(B * T * H * hd), lse = new Float64Array(B * H * T);
      f64.attention(out, lse, q, k, v, c.s);
      let L = 0;
      for (let i = 0; i < out.length; i++) L += w[i] * out[i];
      return L;
    };
    for (const [name, x, g] of [['q', q, lo.dq], ['k', k, lo.dk], ['v', v, lo.dv]] as const) {
      let num2 = 0, err2 = 0;
      for (let i = 0; i < x.length; i++) {
        const x0 = x[i], h = 1e-5;
        x[i] = x0 + h;
        const lp = loss();
        x[i] = x0 - h;
        const lm = loss();
        x[i] = x0;
        const fd = (lp - lm) / (2 * h);
        num2 += fd * fd;
        err2 += (fd - g[i]) ** 2;
      }
      const rel = Math.sqrt(err2 / num2);
      assert.ok(rel < 0.02, `${shape.join('x')} d${name}: ${rel} from finite differences`);
    }
  }
});

/** Runs fn once per bf16 path of this CPU (convert, and avx512bf16 where the CPU has it) on every SIMD level. */
function forEachBf16Path(be: NativeBackend, fn: (tag: string, path: string) => void): void {
  const paths = be.addon.bf16Detected() === 'avx512bf16' ? ['convert', 'avx512bf16'] as const : ['convert'] as const;
  try {
    forEachSimd(be, (level) => {
      for (const p of paths) {
        if (be.addon.setBf16Path(p) !== p) continue; // avx512bf16 needs the avx512 SIMD level
        fn(`${level}/${p}`, p);
      }
    });
  } finally {
    be.addon.setBf16Path('default');
  }
}

test('native attentionBf16 and attentionBackwardBf16 match ref on every bf16 path and SIMD level (GQA, partial tiles, hd 48/64)', { skip }, () => {
  const be = native();
  const rng = new Rng(23);
  for (const shape of SHAPES) {
    const c = makeCase(rng, shape);
    const want = run(ref, c);
    const outs: Record<string, ReturnType<typeof run>> = {};
    forEachBf16Path(be, (level, path) => {
      const got = run(be, c);
      outs[path] = got;
      const tag = `${shape.join('x')} ${level}`;
      assert.ok(maxErr(got.lse, want.lse) < 1e-5, `${tag} lse`);
      // the same bf16 roundings; float32 sums (in another order) can flip a rounding now and then: float32-level
      // agreement overall, and no element further off than such a flip
      for (const name of ['out', 'dq', 'dk', 'dv'] as const) {
        const e = relErr(got[name], want[name]), m = maxErr(got[name], want[name]);
        assert.ok(e < 2e-4 && m < 4e-3, `${tag} ${name}: relative ${e}, max ${m}`);
      }
    });
    // the two paths differ only in summation order, and both are independent of the thread count (checked below)
    if (outs.avx512bf16) for (const name of ['out', 'dq', 'dk', 'dv'] as const) assert.ok(relErr(outs.avx512bf16[name], outs.convert[name]) < 2e-4, name);
  }
});

test('native bf16 attention: results do not depend on the thread count', { skip }, () => {
  const be = native();
  const c = makeCase(new Rng(24), [2, 150, 4, 2, 64]);
  const threads = be.addon.threads();
  try {
    be.addon.setThreads(1);
    const one = run(be, c);
    be.addon.setThreads(Math.max(2, threads));
    const many = run(be, c);
    for (const name of ['out', 'lse', 'dq', 'dk', 'dv'] as const) assert.deepEqual(many[name], one[name], name);
  } finally {
    be.addon.setThreads(threads);
  }
});
