/**
 * Quantized weights (src/kernels/ops/quant.ts, native/quant.cc): block layouts against blocks packed here by hand
 * from ggml's description, quantize/dequantize round trips, and the quantized products — native on every SIMD path
 * against the TypeScript reference, and both against the float product on the dequantized weights.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRefBackend } from '../src/kernels/ref.js';
import { QUANT_TYPES, dequantize, quantize, quantizeActivations, rowBytes, repackX8, unpackX8, x8Bytes, type QuantType } from '../src/kernels/ops/quant.js';
import { Rng } from '../src/util/rng.js';
import { skip, native, randn, assertClose, forEachSimd } from './helpers/native.js';
import { mkdtempSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeConfig } from '../src/model/config.js';
import { writeLlamaGguf } from '../src/io/gguf-llama.js';
import { loadAnyModel } from '../src/io/formats.js';
import { Decoder } from '../src/inference/generate.js';
import { byteVocab } from '../src/tokenizer/vocab.js';
import { peakedModel } from './helpers/models.js';
import { logSoftmax } from '../src/inference/sampler.js';

const ref = createRefBackend('f32');

/** IEEE half bits of a value that is exactly representable (a test input), computed from its exponent and mantissa. */
function halfBits(v: number): number {
  if (v === 0) return 0;
  const s = v < 0 ? 0x8000 : 0;
  const a = Math.abs(v);
  const e = Math.floor(Math.log2(a));
  const m = a / 2 ** e - 1;
  assert.ok(e >= -14 && e <= 15 && Number.isInteger(m * 1024), `${v} is not a normal half`);
  return s | ((e + 15) << 10) | (m * 1024);
}

const le16 = (b: Uint8Array, at: number, v: number): void => {
  b[at] = v & 0xff;
  b[at + 1] = v >> 8;
};

test('Q8_0: a block on the grid quantizes to d and q exactly (ggml layout) and dequantizes back', () => {
  const d = 1 / 16;
  const q = Array.from({ length: 32 }, (_, j) => ((j * 37) % 255) - 127);
  q[9] = 127;
  const x = q.map((v) => v * d);
  const b = quantize('Q8_0', x);
  assert.equal(b.length, 34);
  assert.equal(b[0] | (b[1] << 8), halfBits(d));
  for (let j = 0; j < 32; j++) assert.equal((b[2 + j] << 24) >> 24, q[j], `q[${j}]`);
  assert.deepEqual([...dequantize('Q8_0', b, 32)], x);
});

test('Q4_0: the value of largest magnitude maps to -8, value j in the low nibble of byte j, j+16 in its high nibble', () => {
  const d = 0.25;
  const q = Array.from({ length: 32 }, (_, j) => (j * 7 + 3) % 16); // 0..15
  q[20] = 0;
  // x = −d·(q − 8): x[20] = 2 has the largest magnitude, so ggml's scale is 2 / −8 = −d and each x maps back to its q
  const x = q.map((v) => (v - 8) * -d);
  const b = quantize('Q4_0', x);
  assert.equal(b.length, 18);
  assert.equal(b[0] | (b[1] << 8), halfBits(-d));
  for (let j = 0; j < 16; j++) {
    assert.equal(b[2 + j] & 15, q[j], `low nibble ${j}`);
    assert.equal(b[2 + j] >> 4, q[16 + j], `high nibble ${j}`);
  }
  assert.deepEqual([...dequantize('Q4_0', b, 32)], x);
});

test('Q4_K: a block packed here (6-bit scales and mins, nibbles) dequantizes to d·sc·q − dmin·m', () => {
  const rng = new Rng(3);
  const d = 0.125, dmin = 0.0625;
  const sc = Array.from({ length: 8 }, () => rng.int(64));
  const mn = Array.from({ length: 8 }, () => rng.int(64));
  sc[7] = 63;
  mn[5] = 63;
  const q = Array.from({ length: 256 }, () => rng.int(16));
  const b = new Uint8Array(144);
  le16(b, 0, halfBits(d));
  le16(b, 2, halfBits(dmin));
  // ggml's packing: scales 0..3 and mins 0..3 in the low 6 bits of bytes 0..3 and 4..7; scales and mins 4..7 split
  // into a low nibble (bytes 8..11) and two high bits (the top bits of bytes 0..3 and 4..7)
  for (let i = 0; i < 4; i++) {
    b[4 + i] = sc[i] | ((sc[i + 4] >> 4) << 6);
    b[4 + 4 + i] = mn[i] | ((mn[i + 4] >> 4) << 6);
    b[4 + 8 + i] = (sc[i + 4] & 15) | ((mn[i + 4] & 15) << 4);
  }
  // 4 chunks of 64 values: the first 32 in the low nibbles of 32 bytes, the next 32 in their high nibbles
  for (let c = 0; c < 4; c++) for (let l = 0; l < 32; l++) b[16 + 32 * c + l] = q[64 * c + l] | (q[64 * c + 32 + l] << 4);
  const y = dequantize('Q4_K', b, 256);
  for (let j = 0; j < 256; j++) {
    const i = j >> 5;
    assert.equal(y[j], Math.fround(d * sc[i] * q[j] - dmin * mn[i]), `value ${j}`);
  }
});

test('Q6_K: a block packed here (ql, qh, int8 scales, d last) dequantizes to d·scale·(q − 32)', () => {
  const rng = new Rng(4);
  const d = 0.0078125;
  const sc = Array.from({ length: 16 }, () => rng.int(256) - 128);
  const q = Array.from({ length: 256 }, () => rng.int(64));
  const b = new Uint8Array(210);
  // two halves of 128 values; in each, value l + 32k (k = 0..3): low 4 bits in ql[l + 32(k&1)] (low nibble for
  // k < 2, high for k ≥ 2), high 2 bits at bit 2k of qh[l]
  for (let h = 0; h < 2; h++) {
    for (let l = 0; l < 32; l++) {
      const v = (k: number) => q[128 * h + 32 * k + l];
      b[64 * h + l] = (v(0) & 15) | ((v(2) & 15) << 4);
      b[64 * h + 32 + l] = (v(1) & 15) | ((v(3) & 15) << 4);
      b[128 + 32 * h + l] = (v(0) >> 4) | ((v(1) >> 4) << 2) | ((v(2) >> 4) << 4) | ((v(3) >> 4) << 6);
    }
  }
  for (let g = 0; g < 16; g++) b[192 + g] = sc[g] & 0xff;
  le16(b, 208, halfBits(d));
  const y = dequantize('Q6_K', b, 256);
  for (let j = 0; j < 256; j++) assert.equal(y[j], Math.fround(d * sc[j >> 4] * (q[j] - 32)), `value ${j}`);
});

test('BF16: the top 16 bits of the float32, rounded to nearest even; dequantize widens exactly', () => {
  const x = new Float32Array([1, -2.5, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 3.4e38, 0]);
  const b = quantize('BF16', x);
  const words = Array.from({ length: x.length }, (_, i) => b[2 * i] | (b[2 * i + 1] << 8));
  // 1 = 0x3f80, -2.5 = 0xc020; 1 + 2^-8 is a tie (rounds to even 0x3f80), 1 + 3·2^-8 rounds up to 0x3f82
  assert.deepEqual(words.slice(0, 4), [0x3f80, 0xc020, 0x3f80, 0x3f82]);
  assert.deepEqual([...dequantize('BF16', b, x.length)].slice(0, 4), [1, -2.5, 1, 1 + 2 ** -6]);
});

test('quantize → dequantize: every value within its block\'s step, rms error as the bits allow', () => {
  const rng = new Rng(5);
  const x = randn(rng, 256 * 16);
  for (let i = 0; i < x.length; i += 97) x[i] *= 6; // outliers
  // worst error per value as a fraction of the block's max |x| (half a step, plus the scale's own rounding; Q4_0 a
  // whole step: its grid −8..7 clips the side opposite the largest value), and the rms error relative to the rms of x
  const bounds: Record<QuantType, [number, number]> = { Q8_0: [0.5 / 127 + 1e-3, 0.01], Q4_0: [1 / 8 + 1e-3, 0.15], Q4_K: [0.5 / 15 * 2 + 0.02, 0.11], Q6_K: [0.5 / 32 + 0.01, 0.03], BF16: [2 ** -8, 0.003] };
  for (const t of Object.keys(QUANT_TYPES) as QuantType[]) {
    const y = dequantize(t, quantize(t, x), x.length);
    const bs = QUANT_TYPES[t].blockSize;
    let se = 0, sx = 0;
    for (let s = 0; s < x.length; s += bs) {
      let amax = 0;
      for (let j = 0; j < bs; j++) amax = Math.max(amax, Math.abs(x[s + j]));
      for (let j = 0; j < bs; j++) {
        const e = Math.abs(x[s + j] - y[s + j]);
        assert.ok(e <= bounds[t][0] * amax, `${t}: value ${s + j}: |${x[s + j]} − ${y[s + j]}| > ${bounds[t][0]}·${amax}`);
        se += e * e;
        sx += x[s + j] * x[s + j];
      }
    }
    const rel = Math.sqrt(se / sx);
    assert.ok(rel < bounds[t][1], `${t}: rms error ${rel}`);
  }
});

test('zero blocks quantize to zeros; rowBytes follows the block sizes', () => {
  for (const t of Object.keys(QUANT_TYPES) as QuantType[]) {
    const n = QUANT_TYPES[t].blockSize * 2;
    assert.ok(dequantize(t, quantize(t, new Float32Array(n)), n).every((v) => v === 0), t);
  }
  assert.equal(rowBytes('Q8_0', 288), 9 * 34);
  assert.equal(rowBytes('Q4_0', 288), 9 * 18);
  assert.equal(rowBytes('Q4_K', 768), 3 * 144);
  assert.equal(rowBytes('Q6_K', 512), 2 * 210);
  assert.equal(rowBytes('BF16', 7), 14);
  assert.throws(() => rowBytes('Q4_K', 288), /multiple of 256/);
});

const OP: Record<QuantType, 'matmulQ8_0' | 'matmulQ4_0' | 'matmulQ4K' | 'matmulQ6K' | 'matmulWeightBf16'> = {
  Q8_0: 'matmulQ8_0', Q4_0: 'matmulQ4_0', Q4_K: 'matmulQ4K', Q6_K: 'matmulQ6K', BF16: 'matmulWeightBf16',
};

test('ref quantized products agree with the float product on the dequantized weights (activation rounding only)', () => {
  const rng = new Rng(6);
  for (const t of Object.keys(QUANT_TYPES) as QuantType[]) {
    const K = 512, N = 40, M = 3;
    const x = randn(rng, M * K), wf = randn(rng, N * K);
    const wq = quantize(t, wf);
    const a = new Float32Array(M * N), b = new Float32Array(M * N);
    ref[OP[t]](a, x, wq, M, K, N);
    ref.matmul(b, x, dequantize(t, wq, N * K), M, K, N);
    // int8 activations: relative error ~ 1/127 per value, averaging over K
    assertClose(a, b, 0.01, `${t} vs float`, M * N, Math.sqrt(K));
  }
});

test('native quantized products match the reference on every SIMD path (int8 decode and dequantized-SGEMM prefill shapes, accumulate)', { skip }, () => {
  const be = native();
  const rng = new Rng(7);
  forEachSimd(be, (level) => {
    for (const t of Object.keys(QUANT_TYPES) as QuantType[]) {
      const bs = QUANT_TYPES[t].blockSize;
      const shapes: [number, number, number][] = bs === 1
        ? [[1, 1, 3], [1, 33, 7], [2, 288, 770], [3, 100, 300], [17, 288, 65]]
        : bs === 32
        ? [[1, 32, 1], [1, 288, 770], [3, 64, 9], [15, 96, 40], [16, 96, 40], [17, 288, 65], [1, 768, 300], [70, 96, 300]]
        : [[1, 256, 1], [1, 512, 300], [3, 256, 9], [15, 256, 20], [17, 768, 65], [70, 256, 300]];
      for (const [M, K, N] of shapes) {
        const x = randn(rng, M * K), wq = quantize(t, randn(rng, N * K, 0.1));
        for (const acc of [false, true]) {
          const init = randn(rng, M * N);
          const a = Float32Array.from(init), b = Float32Array.from(init), c = Float32Array.from(init);
          be[OP[t]](a, x, wq, M, K, N, acc);
          ref[OP[t]](b, x, wq, M, K, N, acc);
          assertClose(a, b, 1e-5 * Math.sqrt(K / 32), `${level} ${t} M=${M} K=${K} N=${N} acc=${acc}`);
          ref.matmul(c, x, dequantize(t, wq, N * K), M, K, N, acc);
          assertClose(a, c, 0.02, `${level} ${t} vs float M=${M} K=${K} N=${N}`, M * N, 0.1 * Math.sqrt(K)); // floor: the outputs' typical size
        }
      }
    }
  });
});

test('quantized products check their arguments (block multiple, weight bytes) on both backends', { skip }, () => {
  const be = native();
  for (const b of [be, ref]) {
    assert.throws(() => b.matmulQ8_0(new Float32Array(4), new Float32Array(2 * 48), new Uint8Array(2 * 60), 2, 48, 2), /multiple of the block size 32/);
    assert.throws(() => b.matmulQ4K(new Float32Array(1), new Float32Array(256), new Uint8Array(143), 1, 256, 1), /w has 143 elements, shape needs 144/);
    assert.throws(() => b.matmulQ4_0(new Float32Array(1), new Float32Array(32), new Float32Array(18) as unknown as Uint8Array, 1, 32, 1), /Uint8Array/);
  }
});

test('a quantized GGUF loads with its weights (embedding included) kept in blocks; decoding agrees with the same weights dequantized', () => {
  const config = makeConfig({ dim: 256, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 300, multipleOf: 32, maxSeqLen: 32 });
  const model = peakedModel(config, 11);
  const dir = mkdtempSync(join(tmpdir(), 'llama-ts-quant-'));
  const be = skip ? ref : native();
  const toks = [1, 5, 77, 200, 3, 299, 42, 42, 7];
  for (const type of ['q8_0', 'q4_0', 'q4_k', 'bf16'] as const) {
    const path = join(dir, `m-${type}.gguf`);
    writeLlamaGguf(path, model, byteVocab(config.vocabSize), type);
    const q = loadAnyModel(path, be).model;
    const f = loadAnyModel(path, ref, undefined, undefined, { dequantize: true }).model;
    const L = q.layout;
    const want = { q4_k: 'Q4_K', q4_0: 'Q4_0', q8_0: 'Q8_0', bf16: 'BF16' }[type];
    assert.equal(q.quantized(L.layers[0].wq)?.type, want, type);
    assert.equal(q.quantized(L.layers[1].w1)?.type, want, type);
    assert.equal(q.quantized(L.layers[1].w2)?.type, type === 'q4_k' ? 'Q4_0' : want, type); // 704 columns: not a multiple of 256
    assert.equal(q.quantized(L.output)?.type, type === 'q8_0' || type === 'bf16' ? want : 'Q6_K', type);
    // the embedding table stays in its blocks too: each looked-up row is exactly the dequantized table's row
    assert.ok(q.quantized(L.tokEmbeddings), `${type}: embedding held in blocks`);
    const ids = Int32Array.from(toks), eq = new Float32Array(ids.length * config.dim), ef = new Float32Array(ids.length * config.dim);
    q.embed(eq, ids);
    f.embed(ef, ids);
    assert.deepEqual(eq, ef, `${type}: embedding rows`);
    assert.throws(() => q.embed(eq.subarray(0, config.dim), Int32Array.of(config.vocabSize)), /outside the vocabulary/);
    assert.equal(f.quantized(L.layers[0].wq), undefined);
    // the float32 view of a weight held in blocks is never written
    assert.ok(q.params.view(L.layers[0].wq).every((v) => v === 0));
    const a = new Decoder(q).logitsAll(toks), b = new Decoder(f).logitsAll(toks);
    // the same model on the ref backend (its quantized products are the reference). Not equal to float32 rounding:
    // a 1-ulp difference in an activation (other kernels sum in another order) can move its int8 rounding by one
    // step, which moves a logit by ~d·|w| (the products themselves agree to rounding: tests above)
    // (such flips happen: with the AVX-512 Q4_K kernel's summation order the q4_k logits here differ from the ref's by
    // up to 0.063 of 5.58, while every product of the model agrees with the ref to ~7e-7; the per-row kernel's order
    // happened to flip nothing in this run)
    assertClose(a, new Decoder(loadAnyModel(path, ref).model).logitsAll(toks), 0.02, `${type} logits, ${be.name} vs ref`, a.length, 1);
    // against the dequantized weights in float32 only the int8 activations differ: same top-1, close probabilities
    const V = config.vocabSize;
    for (let i = 0; i < toks.length; i++) {
      const pa = logSoftmax(a.subarray(i * V, (i + 1) * V)), pb = logSoftmax(b.subarray(i * V, (i + 1) * V));
      let am = 0, dp = 0;
      for (let v = 0; v < V; v++) {
        if (pa[v] > pa[am]) am = v;
        dp = Math.max(dp, Math.abs(Math.exp(pa[v]) - Math.exp(pb[v])));
      }
      assert.ok(dp < 0.02, `${type}: |Δp| ${dp} at position ${i}`);
      // top-1 agrees unless the reference's top two are closer than the probabilities can move
      const sorted = Array.from(pb).sort((x, y) => y - x);
      if (Math.exp(sorted[0]) - Math.exp(sorted[1]) > 2 * dp) assert.equal(pb[am], sorted[0], `${type}: top-1 at position ${i}`);
    }
  }
});

test('the repacked products give the same bits with the two-group 512-bit VNNI kernels and without them (LLAMA_TS_SPLIT512=0/1)', { skip }, () => {
  // A Zen4 (512-bit operations split in two) takes the one-group kernels; other AVX-512 VNNI CPUs the two-group ones.
  // Each output lane is one row's own sum in both, so the products are equal bit for bit; on CPUs without AVX-512
  // VNNI both runs take the same path.
  const script = `
    const { createBackend } = await import(${JSON.stringify(new URL('../src/kernels/index.js', import.meta.url).href)});
    const { quantize, repackX8 } = await import(${JSON.stringify(new URL('../src/kernels/ops/quant.js', import.meta.url).href)});
    const { Rng } = await import(${JSON.stringify(new URL('../src/util/rng.js', import.meta.url).href)});
    const { createHash } = await import('node:crypto');
    const be = createBackend('native'), rng = new Rng(5), h = createHash('sha256');
    const randn = (n, s = 1) => Float32Array.from({ length: n }, () => rng.normal() * s);
    for (const t of ['Q4_0', 'Q8_0']) for (const [M, K, N] of [[1, 96, 40], [1, 512, 83], [3, 512, 1376], [16, 96, 83]]) {
      const x = randn(M * K), p = repackX8(t, quantize(t, randn(N * K, 0.1)), N, K), out = new Float32Array(M * N);
      be[t === 'Q4_0' ? 'matmulQ4_0x8' : 'matmulQ8_0x8'](out, x, p, M, K, N);
      h.update(new Uint8Array(out.buffer));
    }
    console.log(h.digest('hex'));`;
  const run = (split: string): string =>
    execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, LLAMA_TS_SPLIT512: split } }).trim();
  const whole = run('0'), split = run('1');
  assert.match(whole, /^[0-9a-f]{64}$/);
  assert.equal(split, whole);
});

test('repackX8: 8-row groups, scales then 4-byte lanes per row; zero rows pad; unpack restores the blocks', () => {
  const rows = 9, cols = 64, rb = rowBytes('Q4_0', cols);
  const w = Uint8Array.from({ length: rows * rb }, (_, i) => (i * 37 + 11) & 255);
  const p = repackX8('Q4_0', w, rows, cols);
  assert.equal(p.length, x8Bytes('Q4_0', rows, cols));
  assert.equal(p.length, 2 * 2 * 144); // 2 groups (9 rows → 16) × 2 blocks × 144 bytes
  // row 1, block 1: its scale at bytes 2..3 of group 0's block 1; its nibble byte 4c + i at 16 + 32c + 4 + i
  const src = 1 * rb + 18;
  assert.deepEqual([p[144 + 2], p[144 + 3]], [w[src], w[src + 1]]);
  assert.equal(p[144 + 16 + 32 * 2 + 4 + 3], w[src + 2 + 11]);
  // row 8 (group 1, lane 0), block 0
  assert.deepEqual([p[288], p[289], p[288 + 16], p[288 + 16 + 32 * 3 + 3]], [w[8 * rb], w[8 * rb + 1], w[8 * rb + 2], w[8 * rb + 2 + 15]]);
  // the padding rows 9..15 are zero (scale 0: they contribute nothing)
  for (let b = 0; b < 2; b++) {
    const o = 288 + 144 * b;
    for (let r = 1; r < 8; r++) {
      assert.equal(p[o + 2 * r] | p[o + 2 * r + 1], 0);
      for (let c = 0; c < 4; c++) for (let i = 0; i < 4; i++) assert.equal(p[o + 16 + 32 * c + 4 * r + i], 0);
    }
  }
  assert.deepEqual(unpackX8('Q4_0', p, rows, cols), w);
  assert.throws(() => repackX8('Q4_0', w.subarray(1), rows, cols), /needs 324 bytes, got 323/);
  // Q8_0: 8 chunks of 32 bytes after the scales (272 bytes per group and block); row 3's quant byte 29 (c 7, i 1)
  const w8 = Uint8Array.from({ length: rows * rowBytes('Q8_0', cols) }, (_, i) => (i * 29 + 5) & 255);
  const p8 = repackX8('Q8_0', w8, rows, cols);
  assert.equal(p8.length, 2 * 2 * 272);
  assert.equal(p8[16 + 32 * 7 + 4 * 3 + 1], w8[3 * rowBytes('Q8_0', cols) + 2 + 29]);
  assert.deepEqual(unpackX8('Q8_0', p8, rows, cols), w8);
});

test('repackQ4_0x8 / repackQ8_0x8: the native repack writes the reference layout byte for byte, padding rows zeroed', { skip }, () => {
  const be = native();
  const rng = new Rng(21);
  for (const t of ['Q4_0', 'Q8_0'] as const) {
    const op = t === 'Q4_0' ? 'repackQ4_0x8' : 'repackQ8_0x8';
    for (const [N, K] of [[1, 32], [7, 64], [8, 96], [9, 32], [40, 512], [83, 96]]) {
      const w = quantize(t, randn(rng, N * K, 0.1));
      const want = repackX8(t, w, N, K);
      const a = new Uint8Array(x8Bytes(t, N, K)).fill(0xa5), r = new Uint8Array(x8Bytes(t, N, K)).fill(0x5a); // dirty: every byte must be written
      be[op](a, w, N, K);
      ref[op](r, w, N, K);
      assert.deepEqual(a, want, `${t} N=${N} K=${K} native`);
      assert.deepEqual(r, want, `${t} N=${N} K=${K} ref`);
      assert.deepEqual(unpackX8(t, a, N, K), w);
    }
    assert.throws(() => be[op](new Uint8Array(10), new Uint8Array(t === 'Q4_0' ? 18 : 34), 1, 32), /out has 10 elements/);
  }
});

test('matmulQ4_0x8 / matmulQ8_0x8 (repacked) match matmulQ4_0 / matmulQ8_0 (decode rows), the ref (prefill rows too) and the float product on every SIMD path; M = 1..15, 16, 31, 47, odd N', { skip }, () => {
  const be = native();
  const rng = new Rng(12);
  const Ks = [32, 96, 512], Ns = [1, 7, 9, 40, 83];
  let i = 0;
  forEachSimd(be, (level) => {
    for (const t of ['Q4_0', 'Q8_0'] as const) {
      const op = t === 'Q4_0' ? 'matmulQ4_0x8' : 'matmulQ8_0x8', plain = OP[t];
      for (const M of [...Array.from({ length: 15 }, (_, j) => j + 1), 16, 31, 47]) {
        const K = Ks[i % Ks.length], N = Ns[i++ % Ns.length];
        const x = randn(rng, M * K), wq = quantize(t, randn(rng, N * K, 0.1)), p = repackX8(t, wq, N, K);
        for (const acc of [false, true]) {
          const init = randn(rng, M * N);
          const a = Float32Array.from(init), b = Float32Array.from(init), c = Float32Array.from(init), r = Float32Array.from(init);
          be[op](a, x, p, M, K, N, acc);
          be[plain](b, x, wq, M, K, N, acc);
          ref[op](r, x, p, M, K, N, acc);
          const what = `${level} ${t} M=${M} K=${K} N=${N} acc=${acc}`;
          // decode rows: the portable path keeps the per-row kernel's float order (equal bit for bit), SIMD paths sum
          // in another order; prefill rows (M ≥ 16) differ from matmulQ4_0/Q8_0 by design (int8 activations there
          // against float32 on dequantized weights), so only the ref and the float product judge them
          if (M < 16) {
            if (level === 'generic') assert.deepEqual(a, b, what);
            else assertClose(a, b, 1e-5 * Math.sqrt(K / 32), what);
          }
          assertClose(a, r, 1e-5 * Math.sqrt(K / 32), `${what} vs ref`);
          ref.matmul(c, x, dequantize(t, wq, N * K), M, K, N, acc);
          assertClose(a, c, 0.02, `${what} vs float`, M * N, 0.1 * Math.sqrt(K));
        }
      }
      // the largest decode shape of mini models: several tasks over the pool; extreme int8 weights (±127, −128)
      const M = 1, K = 512, N = 1376;
      const x = randn(rng, M * K), wq = quantize(t, randn(rng, N * K, 0.1));
      if (t === 'Q8_0') for (let o = 0; o < wq.length; o += 34) wq.fill(o % 68 ? 0x80 : 0x7f, o + 2, o + 34);
      const a = new Float32Array(N), b = new Float32Array(N);
      be[op](a, x, repackX8(t, wq, N, K), M, K, N);
      be[plain](b, x, wq, M, K, N);
      assertClose(a, b, 1e-5 * Math.sqrt(K / 32), `${level} ${t} 1376×512`);
    }
  });
  for (const b of [be, ref]) {
    assert.throws(() => b.matmulQ4_0x8(new Float32Array(9), new Float32Array(32), new Uint8Array(144), 1, 32, 9), /w has 144 elements, shape needs 288/);
    assert.throws(() => b.matmulQ8_0x8(new Float32Array(9), new Float32Array(32), new Uint8Array(272), 1, 32, 9), /w has 272 elements, shape needs 544/);
  }
});

test('Q4_0 and Q8_0 GGUFs on the native backend decode through the repacked weights as through the blocks', { skip }, () => {
  const config = makeConfig({ dim: 256, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 300, multipleOf: 32, maxSeqLen: 32 });
  const dir = mkdtempSync(join(tmpdir(), 'llama-ts-q4x8-'));
  const model = peakedModel(config, 13);
  for (const type of ['q4_0', 'q8_0'] as const) {
    const path = join(dir, `m-${type}.gguf`);
    writeLlamaGguf(path, model, byteVocab(config.vocabSize), type);
    const lines: string[] = [];
    const packed = loadAnyModel(path, native(), undefined, undefined, { weights: 'map', verbose: (l) => lines.push(l) }).model;
    const plain = loadAnyModel(path, native()).model;
    for (const t of plain.layout.tensors) {
      const q = plain.quantized(t);
      if (q) plain.setQuantized(t, q, { repack: false });
    }
    assert.equal(plain.repackedBytes(), 0);
    assert.equal(packed.quantized(packed.layout.layers[0].w1)?.type, type.toUpperCase());
    // every Q4_0/Q8_0 matrix but the embedding table: the 300-row head is not a multiple of 8 (q8_0: Q8_0; q4_0: Q6_K)
    const D = config.dim, F = packed.layout.layers[0].w1.shape[0], nbD = D / 32, bb = type === 'q4_0' ? 18 : 34;
    // at least the feed-forward matrices of both layers (w1, w3: F rows of D; w2: D rows of F), 8·bb per 8 rows and block
    assert.ok(packed.repackedBytes() >= 2 * 3 * F * nbD * bb, `${type}: ${packed.repackedBytes()} bytes repacked`);
    assert.ok(lines.some((l) => /repacked into 8-row groups/.test(l)), lines.join('\n'));
    const toks = [1, 5, 77, 200, 3, 299, 42, 42, 7];
    const a = new Decoder(packed).logitsAll(toks), b = new Decoder(plain).logitsAll(toks);
    // the same integer sums; float order only (and, through it, an activation's int8 rounding may move by one step)
    assertClose(a, b, 0.01, `${type}: repacked vs blocks logits`, a.length, 1);
  }
});

test('native activation quantization is bit for bit quantizeActivations on every SIMD path (ties round away from zero)', { skip }, () => {
  const be = native();
  const K = 96, rng = new Rng(14);
  // block 0: max|x| = 127 so the scale is 1 and the ties x.5 are exact; blocks 1, 2: random, one all zero
  const x = new Float32Array(2 * K);
  const ties = [127, 2.5, -2.5, 0.5, -0.5, 126.5, -126.5, 1.5, -1.5, 0.49999997, -0.49999997, 0, -0];
  ties.forEach((v, j) => (x[j] = v));
  x.set(randn(rng, 32, 3), 32);
  x.set(randn(rng, K, 0.01), K);
  x.fill(0, K + 32, K + 64);
  // one-hot Q8_0 rows (scale 1, q = 1 at column n): out[m, n] = d_b · q_n exactly
  const w = new Uint8Array(K * rowBytes('Q8_0', K));
  for (let n = 0; n < K; n++) {
    const o = n * rowBytes('Q8_0', K) + 34 * (n >> 5);
    w[o + 1] = 0x3c;
    w[o + 2 + (n & 31)] = 1;
  }
  const want = new Float32Array(2 * K);
  for (let m = 0; m < 2; m++) {
    const a = quantizeActivations(x, m * K, K);
    for (let n = 0; n < K; n++) want[m * K + n] = Math.fround(a.d[n >> 5] * a.q[n]);
  }
  assert.deepEqual(Array.from(want.subarray(0, 13)), [127, 3, -3, 1, -1, 127, -127, 2, -2, 0, -0, 0, 0].map((v) => v + 0)); // ties away from zero
  forEachSimd(be, (level) => {
    for (const M of [1, 2]) {
      const out = new Float32Array(M * K);
      be.matmulQ8_0(out, x, w, M, K, K);
      assert.deepEqual(Array.from(out, (v) => v + 0), Array.from(want.subarray(0, M * K), (v) => v + 0), `${level} M=${M}`);
    }
  });
});

test('copy (the bandwidth probe) copies exactly n values over the pool and nothing beyond', { skip }, () => {
  const be = native();
  const src = randn(new Rng(9), 100_003), dst = new Float32Array(100_010).fill(7);
  be.addon.copy(dst, src, 100_003);
  assert.deepEqual(dst.subarray(0, 100_003), src);
  assert.ok(dst.subarray(100_003).every((v) => v === 7));
  assert.throws(() => be.addon.copy(new Float32Array(3), new Float32Array(2), 3), /src has 2 elements, shape needs 3/);
});

test('readSum (the read-bandwidth probe) sums exactly the first n values on any thread count', { skip }, () => {
  const be = native();
  const n = 100_003;
  // small integers: every partial sum is exact in float32, so any order gives the same total
  const x = new Float32Array(n + 5);
  for (let i = 0; i < n; i++) x[i] = (i % 7) - 3;
  x.fill(1000, n);
  let want = 0;
  for (let i = 0; i < n; i++) want += x[i];
  const threads = be.addon.threads();
  try {
    for (const t of [1, 2, 3]) {
      be.addon.setThreads(t);
      assert.equal(be.addon.readSum(x, n), want, `${t} threads`);
      assert.equal(be.addon.readSum(x, 17), -6, `${t} threads, n = 17`); // -3..3 twice (0), then -3, -2, -1
    }
  } finally {
    be.addon.setThreads(threads);
  }
  assert.throws(() => be.addon.readSum(new Float32Array(2), 3), /x has 2 elements, shape needs 3/);
});
