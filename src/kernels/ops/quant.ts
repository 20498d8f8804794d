/**
 * Quantized weights in ggml's block layouts, and the reference of the products against them (ops matmulQ8_0,
 * matmulQ4_0, matmulQ4K, matmulQ6K of the op table). Native kernels: native/quant.cc (entries native/ops/quant.cc);
 * tests: test/quant.test.ts.
 *
 * A weight [rows, cols] is kept as the bytes of its blocks, row by row (cols a multiple of the block size), exactly as
 * a GGUF file stores it, so the bytes can be used where they lie (a file read, later a mapped file) without a copy:
 *
 *   Q8_0  32 values in 34 bytes: f16 d, int8 q[32]                      x = d·q
 *   Q4_0  32 values in 18 bytes: f16 d, u8 qs[16]                       x = d·(nibble − 8); value j < 16 is the
 *         low nibble of qs[j], value 16 + j the high one
 *   Q4_K  256 values in 144 bytes: f16 d, f16 dmin, u8 scales[12], u8 qs[128]; 8 sub-blocks of 32 with a 6-bit
 *         scale sc and min m each (packed in `scales`), x = d·sc·nibble − dmin·m; sub-block 2c takes the low nibbles
 *         of qs[32c..32c+31], 2c+1 the high ones
 *   Q6_K  256 values in 210 bytes: u8 ql[128], u8 qh[64], int8 scales[16], f16 d; x = d·scales[i/16]·(q − 32), q six
 *         bits: four from ql, two from qh (see q6At)
 *   BF16  one value in 2 bytes: the top half of its float32 (kept so for decode: half the bytes of F32)
 *
 * The products (decode: fewer than QUANT_GEMM_ROWS rows of x) quantize the activations as llama.cpp does for these
 * types: each row of x in blocks of 32 to int8 with a float scale (d = max|x|/127, q = round(x/d)), then each block's
 * dot product is an integer sum scaled by the two scales (Q4_0 and Q4_K subtract their offsets through the block's
 * Σq). The native kernels compute the same integer sums, so they differ from this reference only by float32
 * summation order. With more rows (prefill) the product is the float one on the dequantized weights.
 */
import type { FloatArray } from '../backend.js';
import { f16ToF32, f32ToF16, f32ToBf16 } from '../../util/half.js';
import { matmulRef } from './matmul.js';

/** The ggml types held in their own layout in memory (ggml type ids): quantized blocks, and BF16. */
export const QUANT_TYPES = {
  Q4_0: { id: 2, blockSize: 32, blockBytes: 18 },
  Q8_0: { id: 8, blockSize: 32, blockBytes: 34 },
  Q4_K: { id: 12, blockSize: 256, blockBytes: 144 },
  Q6_K: { id: 14, blockSize: 256, blockBytes: 210 },
  BF16: { id: 30, blockSize: 1, blockBytes: 2 },
} as const;
export type QuantType = keyof typeof QUANT_TYPES;

/** A weight [rows, cols] in a quantized block layout; `data` holds rows · rowBytes(type, cols) bytes. */
export interface QuantTensor {
  type: QuantType;
  rows: number;
  cols: number;
  data: Uint8Array;
}

export function isQuantType(t: string): t is QuantType {
  return t in QUANT_TYPES;
}

/** Bytes of one row of `cols` values (cols must be a multiple of the block size). */
export function rowBytes(type: QuantType, cols: number): number {
  const q = QUANT_TYPES[type];
  if (cols % q.blockSize !== 0) throw new RangeError(`${type}: row length ${cols} is not a multiple of ${q.blockSize}`);
  return (cols / q.blockSize) * q.blockBytes;
}

/** A QuantTensor over `data` (a view, not a copy), checked for size. */
export function quantTensor(type: QuantType, rows: number, cols: number, data: Uint8Array): QuantTensor {
  const need = rows * rowBytes(type, cols);
  if (data.length !== need) throw new RangeError(`${type} [${rows}, ${cols}] needs ${need} bytes, got ${data.length}`);
  return { type, rows, cols, data };
}

const f16 = (b: Uint8Array, at: number): number => f16ToF32(b[at] | (b[at + 1] << 8));
const putF16 = (b: Uint8Array, at: number, v: number): void => {
  const h = f32ToF16(v);
  b[at] = h & 0xff;
  b[at + 1] = h >> 8;
};
/** C's roundf: half away from zero. */
const roundf = (x: number): number => Math.sign(x) * Math.round(Math.abs(x));

// ---------------------------------------------------------------- one value of a block

/** Value j (0..255) of the Q4_K block at byte o: [scale index, nibble]. */
function q4kAt(b: Uint8Array, o: number, j: number): [number, number] {
  const c = j >> 6, r = j & 63;
  const byte = b[o + 16 + 32 * c + (r & 31)];
  return [j >> 5, r < 32 ? byte & 15 : byte >> 4];
}

/** Sub-block i's 6-bit scale and min of a Q4_K block's packed `scales` at byte s (ggml's get_scale_min_k4). */
function scaleMinK4(b: Uint8Array, s: number, i: number): [number, number] {
  if (i < 4) return [b[s + i] & 63, b[s + i + 4] & 63];
  return [(b[s + i + 4] & 15) | ((b[s + i - 4] >> 6) << 4), (b[s + i + 4] >> 4) | ((b[s + i] >> 6) << 4)];
}

/** The 6-bit q (0..63) of value j of the Q6_K block at byte o. */
function q6At(b: Uint8Array, o: number, j: number): number {
  const h = j >> 7, r = j & 127, k = r >> 5, l = r & 31;
  const lo = b[o + 64 * h + l + 32 * (k & 1)];
  const hi = b[o + 128 + 32 * h + l];
  return ((k < 2 ? lo & 15 : lo >> 4) | (((hi >> (2 * k)) & 3) << 4));
}

// ---------------------------------------------------------------- dequantize

const f32 = new Float32Array(1);
const bits = new Uint32Array(f32.buffer);

/** The float values of n quantized values (n a multiple of the block size). */
export function dequantize(type: QuantType, b: Uint8Array, n: number): Float32Array {
  const { blockSize, blockBytes } = QUANT_TYPES[type];
  const out = new Float32Array(n);
  for (let blk = 0; blk < n / blockSize; blk++) {
    const o = blk * blockBytes, y = blk * blockSize;
    switch (type) {
      case 'Q8_0': {
        const d = f16(b, o);
        for (let j = 0; j < 32; j++) out[y + j] = d * ((b[o + 2 + j] << 24) >> 24);
        break;
      }
      case 'Q4_0': {
        const d = f16(b, o);
        for (let j = 0; j < 16; j++) {
          out[y + j] = d * ((b[o + 2 + j] & 15) - 8);
          out[y + 16 + j] = d * ((b[o + 2 + j] >> 4) - 8);
        }
        break;
      }
      case 'Q4_K': {
        const d = f16(b, o), dmin = f16(b, o + 2);
        for (let j = 0; j < 256; j++) {
          const [i, q] = q4kAt(b, o, j);
          const [sc, m] = scaleMinK4(b, o + 4, i);
          out[y + j] = Math.fround(Math.fround(d * sc) * q) - Math.fround(dmin * m);
        }
        break;
      }
      case 'Q6_K': {
        const d = f16(b, o + 208);
        for (let j = 0; j < 256; j++) out[y + j] = Math.fround(d * ((b[o + 192 + (j >> 4)] << 24) >> 24)) * (q6At(b, o, j) - 32);
        break;
      }
      case 'BF16':
        bits[0] = (b[o] | (b[o + 1] << 8)) << 16;
        out[y] = f32[0];
        break;
    }
  }
  return out;
}

// ---------------------------------------------------------------- quantize

/** Quantizes x (length a multiple of the block size) into blocks of `type`. */
export function quantize(type: QuantType, x: ArrayLike<number>): Uint8Array {
  const { blockSize, blockBytes } = QUANT_TYPES[type];
  if (x.length % blockSize !== 0) throw new RangeError(`${type} needs a multiple of ${blockSize} values, got ${x.length}`);
  const out = new Uint8Array((x.length / blockSize) * blockBytes);
  for (let blk = 0; blk < x.length / blockSize; blk++) {
    const o = blk * blockBytes, s = blk * blockSize;
    if (type === 'Q8_0') quantizeQ8_0(x, s, out, o);
    else if (type === 'Q4_0') quantizeQ4_0(x, s, out, o);
    else if (type === 'Q4_K') quantizeQ4K(x, s, out, o);
    else if (type === 'Q6_K') quantizeQ6K(x, s, out, o);
    else {
      const h = f32ToBf16(x[s]);
      out[o] = h & 0xff;
      out[o + 1] = h >> 8;
    }
  }
  return out;
}

/** ggml's quantize_row_q8_0_ref. */
function quantizeQ8_0(x: ArrayLike<number>, s: number, out: Uint8Array, o: number): void {
  let amax = 0;
  for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[s + j]));
  const d = Math.fround(amax / 127);
  const id = d ? Math.fround(1 / d) : 0;
  putF16(out, o, d);
  for (let j = 0; j < 32; j++) out[o + 2 + j] = roundf(Math.fround(x[s + j] * id)) & 0xff;
}

/** ggml's quantize_row_q4_0_ref: the value of largest magnitude maps to −8. */
function quantizeQ4_0(x: ArrayLike<number>, s: number, out: Uint8Array, o: number): void {
  let amax = 0, max = 0;
  for (let j = 0; j < 32; j++) {
    const v = x[s + j];
    if (amax < Math.abs(v)) {
      amax = Math.abs(v);
      max = v;
    }
  }
  const d = Math.fround(max / -8);
  const id = d ? Math.fround(1 / d) : 0;
  putF16(out, o, d);
  const q = (v: number): number => Math.min(15, Math.trunc(Math.fround(Math.fround(v * id) + 8.5)));
  for (let j = 0; j < 16; j++) out[o + 2 + j] = q(x[s + j]) | (q(x[s + 16 + j]) << 4);
}

/**
 * Q4_K: per sub-block of 32 the affine map min..max → 0..15 (min clamped to ≤ 0, as ggml keeps it), scales and
 * mins quantized to 6 bits against the block's d and dmin, then each value rounded against its reconstructed scale
 * and min. (ggml's quantizer searches the scale iteratively; this is its first guess, in the same format.)
 */
function quantizeQ4K(x: ArrayLike<number>, s: number, out: Uint8Array, o: number): void {
  const scales = new Float64Array(8), mins = new Float64Array(8);
  for (let i = 0; i < 8; i++) {
    let lo = 0, hi = -Infinity;
    for (let j = 0; j < 32; j++) {
      lo = Math.min(lo, x[s + 32 * i + j]);
      hi = Math.max(hi, x[s + 32 * i + j]);
    }
    scales[i] = Math.max(0, hi - lo) / 15;
    mins[i] = -lo;
  }
  const maxScale = Math.max(...scales), maxMin = Math.max(...mins);
  putF16(out, o, maxScale / 63);
  putF16(out, o + 2, maxMin / 63);
  const d = f16(out, o), dmin = f16(out, o + 2);
  const ls = scales.map((v) => (d ? Math.min(63, Math.round(v / d)) : 0));
  const lm = mins.map((v) => (dmin ? Math.min(63, Math.round(v / dmin)) : 0));
  const sc = o + 4;
  for (let i = 0; i < 4; i++) {
    out[sc + i] = ls[i];
    out[sc + i + 4] = lm[i];
  }
  for (let i = 4; i < 8; i++) {
    out[sc + i + 4] = (ls[i] & 15) | ((lm[i] & 15) << 4);
    out[sc + i - 4] |= (ls[i] >> 4) << 6;
    out[sc + i] |= (lm[i] >> 4) << 6;
  }
  for (let i = 0; i < 8; i++) {
    const dl = Math.fround(d * ls[i]), ml = Math.fround(dmin * lm[i]);
    for (let j = 0; j < 32; j++) {
      const q = dl ? Math.max(0, Math.min(15, Math.round((x[s + 32 * i + j] + ml) / dl))) : 0;
      const at = o + 16 + 32 * (i >> 1) + j;
      out[at] |= i & 1 ? q << 4 : q;
    }
  }
}

/**
 * Q6_K: per group of 16 the value of largest magnitude maps to −32; the groups' scales are quantized to int8 against
 * the block's d (the largest scale maps to −128, as ggml's), then each value is rounded against its group's scale.
 */
function quantizeQ6K(x: ArrayLike<number>, s: number, out: Uint8Array, o: number): void {
  const scales = new Float64Array(16);
  let maxScale = 0;
  for (let g = 0; g < 16; g++) {
    let amax = 0, max = 0;
    for (let j = 0; j < 16; j++) {
      const v = x[s + 16 * g + j];
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    scales[g] = max / -32;
    if (Math.abs(scales[g]) > Math.abs(maxScale)) maxScale = scales[g];
  }
  const iscale = maxScale ? -128 / maxScale : 0;
  putF16(out, o + 208, iscale ? 1 / iscale : 0);
  const d = f16(out, o + 208);
  const L = new Uint8Array(256);
  for (let g = 0; g < 16; g++) {
    const sc = Math.max(-128, Math.min(127, Math.round(iscale * scales[g])));
    out[o + 192 + g] = sc & 0xff;
    const dl = Math.fround(d * sc);
    for (let j = 0; j < 16; j++) L[16 * g + j] = (dl ? Math.max(-32, Math.min(31, Math.round(x[s + 16 * g + j] / dl))) : 0) + 32;
  }
  for (let h = 0; h < 2; h++) {
    for (let l = 0; l < 32; l++) {
      const e = 128 * h + l;
      out[o + 64 * h + l] = (L[e] & 15) | ((L[e + 64] & 15) << 4);
      out[o + 64 * h + l + 32] = (L[e + 32] & 15) | ((L[e + 96] & 15) << 4);
      out[o + 128 + 32 * h + l] = (L[e] >> 4) | ((L[e + 32] >> 4) << 2) | ((L[e + 64] >> 4) << 4) | ((L[e + 96] >> 4) << 6);
    }
  }
}

// ---------------------------------------------------------------- activations and products

/** A row of activations quantized in blocks of 32: int8 values, each block's scale and the sum of its values. */
export interface Q8Row {
  q: Int8Array;
  d: Float32Array;
  sum: Int32Array;
}

/** Quantizes K activations (K a multiple of 32) as llama.cpp's quantize_row_q8_0 does, with a float32 scale. */
export function quantizeActivations(x: ArrayLike<number>, off: number, K: number): Q8Row {
  const nb = K / 32;
  const r: Q8Row = { q: new Int8Array(K), d: new Float32Array(nb), sum: new Int32Array(nb) };
  for (let b = 0; b < nb; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[off + 32 * b + j]));
    const d = Math.fround(amax / 127);
    const id = d ? Math.fround(1 / d) : 0;
    r.d[b] = d;
    let sum = 0;
    for (let j = 0; j < 32; j++) {
      const v = roundf(Math.fround(x[off + 32 * b + j] * id));
      r.q[32 * b + j] = v;
      sum += v;
    }
    r.sum[b] = sum;
  }
  return r;
}

/** Σ_j w_j·x_j of one row of weights (bytes from o) against a quantized activation row, in float64. */
function dotRow(type: QuantType, w: Uint8Array, o: number, a: Q8Row, K: number): number {
  let acc = 0;
  const { q, d: xd, sum: xs } = a;
  switch (type) {
    case 'Q8_0':
      for (let b = 0; b < K / 32; b++) {
        const wo = o + 34 * b;
        let s = 0;
        for (let j = 0; j < 32; j++) s += ((w[wo + 2 + j] << 24) >> 24) * q[32 * b + j];
        acc += f16(w, wo) * xd[b] * s;
      }
      return acc;
    case 'Q4_0':
      for (let b = 0; b < K / 32; b++) {
        const wo = o + 18 * b;
        let s = 0;
        for (let j = 0; j < 16; j++) s += (w[wo + 2 + j] & 15) * q[32 * b + j] + (w[wo + 2 + j] >> 4) * q[32 * b + 16 + j];
        acc += f16(w, wo) * xd[b] * (s - 8 * xs[b]);
      }
      return acc;
    case 'Q4_K':
      for (let B = 0; B < K / 256; B++) {
        const wo = o + 144 * B;
        const d = f16(w, wo), dmin = f16(w, wo + 2);
        for (let i = 0; i < 8; i++) {
          const b = 8 * B + i;
          const [sc, m] = scaleMinK4(w, wo + 4, i);
          let s = 0;
          for (let j = 0; j < 32; j++) s += q4kAt(w, wo, 32 * i + j)[1] * q[32 * b + j];
          acc += xd[b] * (d * sc * s - dmin * m * xs[b]);
        }
      }
      return acc;
    case 'BF16':
      throw new Error('BF16 products are float products (matmulQuantRef)');
    case 'Q6_K':
      for (let B = 0; B < K / 256; B++) {
        const wo = o + 210 * B;
        const d = f16(w, wo + 208);
        for (let g = 0; g < 16; g++) {
          let s = 0;
          for (let j = 0; j < 16; j++) s += (q6At(w, wo, 16 * g + j) - 32) * q[256 * B + 16 * g + j];
          acc += d * ((w[wo + 192 + g] << 24) >> 24) * xd[(256 * B + 16 * g) >> 5] * s;
        }
      }
      return acc;
  }
}

/**
 * From this many rows of activations on (prefill), a quantized product is computed in float on the dequantized
 * weights: it is then bound by arithmetic, not by the bytes of the weights, and the native kernel runs its SGEMM on
 * weight rows dequantized a chunk at a time (native/quant.h, QUANT_GEMM_ROWS). Below it (decode) the activations are
 * quantized to int8.
 */
export const QUANT_GEMM_ROWS = 16;

/**
 * out[M,N] (+)= x[M,K]·Wᵀ for W [N,K] in `type`'s blocks: with M < QUANT_GEMM_ROWS the activations quantized per
 * block of 32 and integer block sums, else (and always for BF16) the float product on the dequantized weights.
 */
export function matmulQuantRef(type: QuantType, out: FloatArray, x: FloatArray, w: Uint8Array, M: number, K: number, N: number, accumulate = false): void {
  if (M >= QUANT_GEMM_ROWS || type === 'BF16') return matmulRef(out, x, dequantize(type, w, N * K), M, K, N, accumulate);
  matmulInt8Ref(type, out, x, w, M, K, N, accumulate);
}

/** The int8-activation product of any number of rows: each row of x quantized per block, dotted with every weight row. */
function matmulInt8Ref(type: QuantType, out: FloatArray, x: FloatArray, w: Uint8Array, M: number, K: number, N: number, accumulate = false): void {
  const rb = rowBytes(type, K);
  for (let m = 0; m < M; m++) {
    const a = quantizeActivations(x, m * K, K);
    for (let n = 0; n < N; n++) {
      const v = dotRow(type, w, n * rb, a, K);
      out[m * N + n] = accumulate ? out[m * N + n] + v : v;
    }
  }
}

export const matmulQ8_0Ref = (out: FloatArray, x: FloatArray, w: Uint8Array, M: number, K: number, N: number, accumulate?: boolean): void =>
  matmulQuantRef('Q8_0', out, x, w, M, K, N, accumulate);
export const matmulQ4_0Ref = (out: FloatArray, x: FloatArray, w: Uint8Array, M: number, K: number, N: number, accumulate?: boolean): void =>
  matmulQuantRef('Q4_0', out, x, w, M, K, N, accumulate);
export const matmulQ4KRef = (out: FloatArray, x: FloatArray, w: Uint8Array, M: number, K: number, N: number, accumulate?: boolean): void =>
  matmulQuantRef('Q4_K', out, x, w, M, K, N, accumulate);
export const matmulQ6KRef = (out: FloatArray, x: FloatArray, w: Uint8Array, M: number, K: number, N: number, accumulate?: boolean): void =>
  matmulQuantRef('Q6_K', out, x, w, M, K, N, accumulate);
export const matmulWeightBf16Ref = (out: FloatArray, x: FloatArray, w: Uint8Array, M: number, K: number, N: number, accumulate?: boolean): void =>
  matmulQuantRef('BF16', out, x, w, M, K, N, accumulate);

// ---------------------------------------------------------------- Q4_0 and Q8_0 repacked 8 rows at a time (decode)

/** The types repackX8 repacks. */
export type X8Type = 'Q4_0' | 'Q8_0';

/**
 * Bytes of a weight [rows, cols] repacked by repackX8: the rows padded with zero rows to a multiple of 8, per group of
 * 8 rows and block of 32 columns 8 × the block's bytes (Q4_0 144, Q8_0 272).
 */
export function x8Bytes(type: X8Type, rows: number, cols: number): number {
  return Math.ceil(rows / 8) * rowBytes(type, cols) * 8;
}

/**
 * A Q4_0 or Q8_0 weight [rows, cols] (row-major blocks, as stored) repacked so that one pass computes 8 rows'
 * products (native/quant-x8.cc; llama.cpp repacks its Q4_0 the same way for its 8-row GEMV). Rows are padded with
 * zero rows to a multiple of 8; per group g of 8 rows and block b of 32 columns, B = 8·blockBytes bytes at
 * (g·nb + b)·B (nb = cols/32; Q4_0 B = 144 with 4 chunks, Q8_0 B = 272 with 8):
 *
 *   bytes 0..15       the 8 rows' f16 scales (row 8g + r at 2r)
 *   bytes 16..B−1     chunks c of 32 bytes; byte 4r + i of chunk c is byte 4c + i of row 8g + r's quants (the
 *                     block's bytes after its scale)
 *
 * so a 32-byte load of chunk c holds in its 4-byte lane r row r's 4 bytes, which meet the same 4 activation bytes in
 * every lane (Q4_0: values 4c..4c+3 in the low nibbles, 16+4c..16+4c+3 in the high ones; Q8_0: values 4c..4c+3).
 */
export function repackX8(type: X8Type, w: Uint8Array, rows: number, cols: number): Uint8Array {
  const rb = rowBytes(type, cols);
  if (w.length !== rows * rb) throw new RangeError(`${type} [${rows}, ${cols}] needs ${rows * rb} bytes, got ${w.length}`);
  const out = new Uint8Array(x8Bytes(type, rows, cols));
  repackX8Into(type, out, w, rows, cols);
  return out;
}

/**
 * repackX8 into `out` (x8Bytes(type, N, K) bytes, every one written: the padding rows' bytes are zeroed) from the first
 * N rows of blocks in w; the reference of the ops repackQ4_0x8 / repackQ8_0x8 (native/quant-x8.cc's is the one the
 * model uses at load: this loop moves ~0.4 GB/s, ~0.3 s for the 110M-shape Q8_0 model).
 */
export function repackX8Into(type: X8Type, out: Uint8Array, w: Uint8Array, N: number, K: number): void {
  const rb = rowBytes(type, K), nb = K / 32, bb = QUANT_TYPES[type].blockBytes, chunks = (bb - 2) / 4;
  const groups = Math.ceil(N / 8);
  for (let g = 0; g < groups; g++) {
    for (let r = 0; r < 8; r++) {
      const n = 8 * g + r;
      for (let b = 0; b < nb; b++) {
        const src = n * rb + bb * b, dst = (g * nb + b) * 8 * bb;
        const real = n < N;
        out[dst + 2 * r] = real ? w[src] : 0;
        out[dst + 2 * r + 1] = real ? w[src + 1] : 0;
        for (let c = 0; c < chunks; c++) for (let i = 0; i < 4; i++) out[dst + 16 + 32 * c + 4 * r + i] = real ? w[src + 2 + 4 * c + i] : 0;
      }
    }
  }
}

export const repackQ4_0x8Ref = (out: Uint8Array, w: Uint8Array, N: number, K: number): void => repackX8Into('Q4_0', out, w, N, K);
export const repackQ8_0x8Ref = (out: Uint8Array, w: Uint8Array, N: number, K: number): void => repackX8Into('Q8_0', out, w, N, K);

/** The row-major blocks of the first `rows` rows of a repacked weight (repackX8's inverse). */
export function unpackX8(type: X8Type, p: Uint8Array, rows: number, cols: number): Uint8Array {
  const rb = rowBytes(type, cols), nb = cols / 32, bb = QUANT_TYPES[type].blockBytes, chunks = (bb - 2) / 4;
  if (p.length !== x8Bytes(type, rows, cols)) throw new RangeError(`repacked ${type} [${rows}, ${cols}] needs ${x8Bytes(type, rows, cols)} bytes, got ${p.length}`);
  const w = new Uint8Array(rows * rb);
  for (let n = 0; n < rows; n++) {
    const g = n >> 3, r = n & 7;
    for (let b = 0; b < nb; b++) {
      const dst = n * rb + bb * b, src = (g * nb + b) * 8 * bb;
      w[dst] = p[src + 2 * r];
      w[dst + 1] = p[src + 2 * r + 1];
      for (let c = 0; c < chunks; c++) for (let i = 0; i < 4; i++) w[dst + 2 + 4 * c + i] = p[src + 16 + 32 * c + 4 * r + i];
    }
  }
  return w;
}


/**
 * matmulQ4_0's int8-activation product over a weight repacked by repackX8, for any number of rows: below
 * QUANT_GEMM_ROWS the same results as matmulQ4_0; from there on (prefill) the activations stay quantized per block, as
 * llama.cpp's prefill does, instead of matmulQ4_0's float32 product on dequantized weights.
 */
export function matmulQ4_0x8Ref(out: FloatArray, x: FloatArray, w: Uint8Array, M: number, K: number, N: number, accumulate = false): void {
  matmulInt8Ref('Q4_0', out, x, unpackX8('Q4_0', w, N, K), M, K, N, accumulate);
}
/** matmulQ8_0's int8-activation product (any number of rows) over a weight repacked by repackX8. */
export function matmulQ8_0x8Ref(out: FloatArray, x: FloatArray, w: Uint8Array, M: number, K: number, N: number, accumulate = false): void {
  matmulInt8Ref('Q8_0', out, x, unpackX8('Q8_0', w, N, K), M, K, N, accumulate);
}

const QUANT_OPS = { Q8_0: 'matmulQ8_0', Q4_0: 'matmulQ4_0', Q4_K: 'matmulQ4K', Q6_K: 'matmulQ6K', BF16: 'matmulWeightBf16' } as const;

type QuantProduct = (out: FloatArray, x: FloatArray, w: Uint8Array, M: number, K: number, N: number, accumulate?: boolean) => void;

/**
 * out[M, w.rows] (+)= x[M, w.cols]·wᵀ through the backend's product for w's type; with `x8` (w repacked by
 * repackX8), through matmulQ4_0x8 / matmulQ8_0x8 on it instead, for decode and prefill alike (int8 activations).
 */
export function matmulQuant(
  be: { [K in (typeof QUANT_OPS)[QuantType] | 'matmulQ4_0x8' | 'matmulQ8_0x8']: QuantProduct },
  w: QuantTensor, out: FloatArray, x: FloatArray, M: number, accumulate = false, x8?: Uint8Array,
): void {
  // prefill rows too, where SIMD kernels run the repacked product (the portable 8-row loop is slower than
  // dequantizing for the float32 SGEMM)
  const simd = (be as { simd?: () => string }).simd?.();
  if (x8 && (w.type === 'Q4_0' || w.type === 'Q8_0') && (M < QUANT_GEMM_ROWS || (simd !== undefined && simd !== 'generic'))) {
    return be[w.type === 'Q4_0' ? 'matmulQ4_0x8' : 'matmulQ8_0x8'](out, x, x8, M, w.cols, w.rows, accumulate);
  }
  be[QUANT_OPS[w.type]](out, x, w.data, M, w.cols, w.rows, accumulate);
}
