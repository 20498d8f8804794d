/** bfloat16 kernels (--dtype bf16): rounding as PyTorch, and every native bf16 path against the ref backend's. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRefBackend } from '../src/kernels/ref.js';
import { f32ToBf16, bf16ToF32 } from '../src/kernels/ops/bf16.js';
import { Rng } from '../src/util/rng.js';
import { skip, native, randn, assertClose, forEachSimd } from './helpers/native.js';
import type { NativeBackend } from '../src/kernels/native.js';

const ref = createRefBackend('f32');

test('f32ToBf16 rounds to nearest even, as torch.tensor(x).to(torch.bfloat16)', () => {
  // 1 + 2^-8 lies halfway between bf16 1 and 1 + 2^-7: ties go to the even mantissa (1); just above rounds up
  assert.equal(f32ToBf16(1 + 2 ** -8), 0x3f80);
  assert.equal(f32ToBf16(1 + 2 ** -8 + 2 ** -20), 0x3f81);
  assert.equal(f32ToBf16(1 + 3 * 2 ** -8), 0x3f82); // halfway above an odd mantissa: up to even
  assert.equal(f32ToBf16(-2.5), 0xc020);
  assert.equal(f32ToBf16(Infinity), 0x7f80);
  assert.equal(f32ToBf16(3.4e38), 0x7f80); // rounds past the largest bf16 to infinity, as PyTorch
  assert.equal(f32ToBf16(1e-40), 0x0001); // float32 subnormals keep their upper bits
  assert.ok(Number.isNaN(bf16ToF32(f32ToBf16(NaN))));
  for (const v of [0, 1, -1.5, 3.140625, 65280]) assert.equal(bf16ToF32(f32ToBf16(v)), v); // exactly representable
  assert.equal(bf16ToF32(0x3f80), 1);
  assert.equal(bf16ToF32(0x4049), 3.140625);
});

/** Runs fn once per bf16 path of this CPU (convert, and avx512bf16 where the CPU has it) on every SIMD level. */
function forEachBf16Path(be: NativeBackend, fn: (tag: string) => void): void {
  const paths = be.addon.bf16Detected() === 'avx512bf16' ? (['convert', 'avx512bf16'] as const) : (['convert'] as const);
  try {
    forEachSimd(be, (level) => {
      for (const p of paths) {
        const got = be.addon.setBf16Path(p);
        if (got !== p) continue; // avx512bf16 needs the avx512 SIMD level
        fn(`${level}/${p}`);
      }
    });
  } finally {
    be.addon.setBf16Path('default');
  }
}

const SHAPES: [number, number, number][] = [
  [1, 1, 1], [1, 288, 770], [7, 13, 5], [33, 65, 17], [64, 65, 64], [12, 32, 32], [150, 203, 90], [96, 45, 200], [77, 7, 129], [200, 600, 131], [3, 517, 2], [300, 257, 513],
  // several K blocks of the bf16 kernel with an odd last one (backward weight: K = M = 999), and K = 1000 in the others
  [999, 20, 40], [40, 1000, 13],
];

function bf16(x: Float32Array): Uint16Array {
  const out = new Uint16Array(x.length);
  ref.toBf16(out, x, x.length);
  return out;
}

test('toBf16 and fromBf16: native bitwise equal to ref (ties, subnormals, NaN, infinities)', { skip }, () => {
  const be = native();
  const rng = new Rng(3);
  const x = randn(rng, 200_001);
  x.set([1 + 2 ** -8, 1 + 3 * 2 ** -8, 1e-40, -1e-40, Infinity, -Infinity, NaN, 3.4e38, 0, -0]);
  const a = new Uint16Array(x.length), b = new Uint16Array(x.length);
  forEachSimd(be, () => {
    be.toBf16(a, x, x.length);
    ref.toBf16(b, x, x.length);
    assert.deepEqual(a, b);
    const fa = new Float32Array(x.length), fb = new Float32Array(x.length);
    be.fromBf16(fa, a, a.length);
    ref.fromBf16(fb, b, b.length);
    assert.deepEqual(new Uint32Array(fa.buffer), new Uint32Array(fb.buffer));
  });
});

test('matmulBf16 and its backward products match ref on every bf16 path', { skip }, () => {
  const be = native();
  const rng = new Rng(4);
  for (const [M, K, N] of SHAPES) {
    const x = bf16(randn(rng, M * K)), w = bf16(randn(rng, N * K)), dy = bf16(randn(rng, M * N));
    const init = randn(rng, M * N), init2 = randn(rng, M * K), init3 = randn(rng, N * K);
    // the references once per shape: out (acc false/true), dx (acc false/true), dw
    const want = [false, true].map((acc) => {
      const o = Float32Array.from(init), d = Float32Array.from(init2);
      ref.matmulBf16(o, x, w, M, K, N, acc);
      ref.matmulBackwardInputBf16(d, dy, w, M, K, N, acc);
      return { o, d };
    });
    const dwWant = Float32Array.from(init3);
    ref.matmulBackwardWeightBf16(dwWant, dy, x, M, K, N);
    forEachBf16Path(be, (path) => {
      const tag = `${path} M=${M} K=${K} N=${N}`;
      [false, true].forEach((acc, i) => {
        const o = Float32Array.from(init), d = Float32Array.from(init2);
        be.matmulBf16(o, x, w, M, K, N, acc);
        // products of bf16 values are exact in float32: only the float32 sums differ in order
        assertClose(o, want[i].o, 2e-6 * Math.sqrt(K), `matmulBf16 acc=${acc} ${tag}`);
        be.matmulBackwardInputBf16(d, dy, w, M, K, N, acc);
        assertClose(d, want[i].d, 2e-6 * Math.sqrt(N), `matmulBackwardInputBf16 acc=${acc} ${tag}`);
      });
      const dw = Float32Array.from(init3);
      be.matmulBackwardWeightBf16(dw, dy, x, M, K, N);
      assertClose(dw, dwWant, 2e-6 * Math.sqrt(M), `matmulBackwardWeightBf16 ${tag}`);
    });
  }
});

test('packBf16 / packBf16T: native lays the weights out as the ref does; the packed products give the bits of the unpacked ones on every bf16 path', { skip }, () => {
  const be = native();
  const rng = new Rng(6);
  // odd K, N past a 32-column panel, several K blocks (K = 1001 and, for dy·w, N = 999), more rows than a packed
  // block of A (400 > 384), fewer than a micro-tile
  for (const [M, K, N] of [[7, 13, 45], [400, 1001, 33], [5, 64, 999], [30, 288, 64]] as const) {
    const w = bf16(randn(rng, N * K)), x = bf16(randn(rng, M * K)), dy = bf16(randn(rng, M * N));
    const wp = new Uint16Array(Math.ceil(K / 2) * Math.ceil(N / 32) * 64), wpT = new Uint16Array(Math.ceil(N / 2) * Math.ceil(K / 32) * 64);
    const refWp = new Uint16Array(wp.length).fill(1), refWpT = new Uint16Array(wpT.length).fill(1);
    ref.packBf16(refWp, w, N, K);
    ref.packBf16T(refWpT, w, N, K);
    const init = randn(rng, M * N), init2 = randn(rng, M * K);
    forEachBf16Path(be, (path) => {
      const tag = `${path} M=${M} K=${K} N=${N}`;
      wp.fill(7);
      wpT.fill(7);
      be.packBf16(wp, w, N, K);
      be.packBf16T(wpT, w, N, K);
      assert.deepEqual(wp, refWp, `packBf16 ${tag}`);
      assert.deepEqual(wpT, refWpT, `packBf16T ${tag}`);
      for (const acc of [false, true]) {
        const o = Float32Array.from(init), o2 = Float32Array.from(init), d = Float32Array.from(init2), d2 = Float32Array.from(init2);
        be.matmulBf16(o, x, w, M, K, N, acc);
        be.matmulBf16Packed(o2, x, wp, M, K, N, acc);
        assert.deepEqual(o2, o, `matmulBf16Packed acc=${acc} ${tag}`);
        be.matmulBackwardInputBf16(d, dy, w, M, K, N, acc);
        be.matmulBackwardInputBf16Packed(d2, dy, wpT, M, K, N, acc);
        assert.deepEqual(d2, d, `matmulBackwardInputBf16Packed acc=${acc} ${tag}`);
      }
    });
    // the ref's packed products against its unpacked ones
    const o = Float32Array.from(init), o2 = Float32Array.from(init), d = Float32Array.from(init2), d2 = Float32Array.from(init2);
    ref.matmulBf16(o, x, w, M, K, N, true);
    ref.matmulBf16Packed(o2, x, refWp, M, K, N, true);
    assert.deepEqual(o2, o);
    ref.matmulBackwardInputBf16(d, dy, w, M, K, N);
    ref.matmulBackwardInputBf16Packed(d2, dy, refWpT, M, K, N);
    assert.deepEqual(d2, d);
  }
  assert.throws(() => be.packBf16(new Uint16Array(10), new Uint16Array(4), 2, 2), /out has 10 elements, shape needs 64/);
  const odd = new Uint16Array(65).subarray(1);
  assert.throws(() => be.packBf16(odd, new Uint16Array(4), 2, 2), /out must start on a 4-byte boundary/);
});

test('crossEntropyBf16: the loss of crossEntropy, its gradient then toBf16 within one bf16 rounding (native, every SIMD level), and the ref within bf16 rounding', { skip }, () => {
  const be = native();
  const rng = new Rng(5);
  // V not a multiple of the kernel's 4096-float blocks nor of 16; targets in the first and last block, one ignored row
  for (const [rows, V] of [[5, 9001], [3, 37], [1, 4096]] as const) {
    const logits = randn(rng, rows * V).map((v) => 4 * v);
    const targets = Int32Array.from({ length: rows }, (_, r) => (r === 1 ? -1 : r % 2 ? V - 1 : (r * 977) % V));
    const gs = 1 / 7;
    forEachSimd(be, (level) => {
      const f = Float32Array.from(logits), want = new Uint16Array(rows * V);
      const lossWant = be.crossEntropy(f, targets, rows, V, f, gs);
      be.toBf16(want, f, rows * V);
      const got = new Uint16Array(rows * V).fill(0xffff);
      const loss = be.crossEntropyBf16(logits, targets, rows, V, got, gs);
      assert.equal(loss, lossWant, `${level} rows=${rows} V=${V}`);
      // the float32 values before rounding agree to float32 rounding: the bf16 bits to one step where they round apart
      let apart = 0;
      for (let i = 0; i < got.length; i++) {
        assert.ok(Math.abs(got[i] - want[i]) <= 1 && (got[i] ^ want[i]) < 0x8000, `${level} rows=${rows} V=${V} [${i}]: ${got[i]} vs ${want[i]}`);
        if (got[i] !== want[i]) apart++;
      }
      assert.ok(apart <= got.length / 100, `${level}: ${apart} of ${got.length} values round apart`);
      if (rows > 1) for (let i = 0; i < V; i++) assert.equal(got[V + i], 0, 'the ignored row is zero');
    });
    const refGot = new Uint16Array(rows * V);
    const refLoss = ref.crossEntropyBf16(logits, targets, rows, V, refGot, gs);
    const nat = new Uint16Array(rows * V);
    assert.ok(Math.abs(be.crossEntropyBf16(logits, targets, rows, V, nat, gs) - refLoss) < 1e-4 * rows);
    const wide = (u: Uint16Array) => Float32Array.from(u, bf16ToF32);
    assertClose(wide(nat), wide(refGot), 2 ** -8 * gs, `ref rows=${rows} V=${V}`);
  }
  assert.throws(() => be.crossEntropyBf16(new Float32Array(4), Int32Array.of(0, 2), 2, 2, new Uint16Array(4), 1), /crossEntropyBf16: target 2 at row 1 is outside the vocabulary \(2\)/);
  assert.throws(() => ref.crossEntropyBf16(new Float32Array(4), Int32Array.of(0, 2), 2, 2, new Uint16Array(4), 1), /crossEntropyBf16: target 2 at row 1 is outside the vocabulary \(2\)/);
});

test('bf16 ops check their buffers: a Float32Array where bf16 bits are declared is a TypeError', { skip }, () => {
  const be = native();
  const out = new Float32Array(4);
  assert.throws(() => be.matmulBf16(out, new Float32Array(4) as unknown as Uint16Array, new Uint16Array(4), 2, 2, 2), /x must be a Uint16Array/);
  assert.throws(() => be.matmulBf16(out, new Uint16Array(3), new Uint16Array(4), 2, 2, 2), /x has 3 elements, shape needs 4/);
  assert.throws(() => be.addon.setBf16Path('amx' as 'convert'), /unknown path 'amx'/);
});

test('LLAMA_TS_BF16=convert and a lower SIMD level select the convert path', { skip }, () => {
  const be = native();
  try {
    be.addon.setSimd('avx2');
    assert.equal(be.addon.bf16Path(), 'convert');
  } finally {
    be.addon.setSimd('default');
  }
  assert.equal(be.addon.setBf16Path('convert'), 'convert');
  be.addon.setBf16Path('default');
  assert.equal(be.addon.bf16Path(), be.addon.bf16Detected());
});

test('convert --type bf16: GGUF and HF safetensors hold the weights rounded to bfloat16 (norm gains in float32 in GGUF)', async () => {
  const { mkdtempSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { makeConfig } = await import('../src/model/config.js');
  const { peakedModel } = await import('./helpers/models.js');
  const { saveModelAs, loadAnyModel } = await import('../src/io/formats.js');
  const { runCli } = await import('./helpers/cli.js');
  const config = makeConfig({ dim: 32, nLayers: 1, nHeads: 4, nKvHeads: 2, vocabSize: 259, multipleOf: 32, maxSeqLen: 16 });
  const model = peakedModel(config);
  const dir = mkdtempSync(join(tmpdir(), 'llama-ts-bf16-convert-'));
  saveModelAs('ckpt', join(dir, 'ck'), model, null);
  for (const [to, fmt] of [[join(dir, 'm.gguf'), 'gguf'], [join(dir, 'hf'), 'hf']] as const) {
    const r = runCli(['convert', '--from', join(dir, 'ck'), '--to', to, '--to-format', fmt, '--type', 'bf16']);
    assert.equal(r.code, 0, r.stderr);
    const back = loadAnyModel(to, ref, undefined, undefined, { dequantize: true }).model; // BF16 GGUF weights are otherwise held as they are in the file
    for (const t of model.layout.tensors) {
      const a = model.params.view(t), b = back.params.view(t);
      const lowered = fmt === 'hf' || t.shape.length === 2;
      for (let i = 0; i < a.length; i++) assert.equal(b[i], lowered ? bf16ToF32(f32ToBf16(a[i])) : a[i], `${fmt} ${t.name}[${i}]`);
    }
  }
});
