/**
 * One transformer layer of a batch-1 decode step in one call (Backend.decodeLayer): the sequence of ops that
 * Llama.blockForward runs with a CachedAttention over one float32 cache for one new token, in the same order on the
 * same buffers, so the result is the same to the last bit. The native op runs the same kernels from C++, with no
 * return to JavaScript between them: each return costs ~1–7 µs there right after a matrix product has streamed its
 * weights through the caches (ops/table.ts; docs/INFERENCE.md).
 */
import type { FloatArray, RopeTable } from '../backend.js';
import { matmulRef } from './matmul.js';
import { rmsnormRef } from './rmsnorm.js';
import { ropeRef } from './rope.js';
import { attentionCachedRef } from './attention.js';
import { swigluRef } from './swiglu.js';

export function decodeLayerRef(
  x: FloatArray, xn: FloatArray, rstd: FloatArray, q: FloatArray, k: FloatArray, v: FloatArray, att: FloatArray,
  h1: FloatArray, h3: FloatArray, gate: FloatArray,
  attnNorm: FloatArray, wq: FloatArray, wk: FloatArray, wv: FloatArray, wo: FloatArray, ffnNorm: FloatArray, w1: FloatArray, w3: FloatArray, w2: FloatArray,
  kc: FloatArray, vc: FloatArray, table: RopeTable, dim: number, nHeads: number, nKvHeads: number, ffn: number, pos: number, eps: number,
): void {
  const hd = table.headDim, qw = nHeads * hd, kw = nKvHeads * hd;
  rmsnormRef(xn, rstd, x, attnNorm, 1, dim, eps);
  matmulRef(q, xn, wq, 1, dim, qw);
  matmulRef(k, xn, wk, 1, dim, kw);
  matmulRef(v, xn, wv, 1, dim, kw);
  ropeRef(q, 1, 1, nHeads, table, pos);
  ropeRef(k, 1, 1, nKvHeads, table, pos);
  kc.set(k.subarray(0, kw), pos * kw);
  vc.set(v.subarray(0, kw), pos * kw);
  attentionCachedRef(att, q, kc, vc, 1, pos, nHeads, nKvHeads, hd);
  matmulRef(x, att, wo, 1, qw, dim, true);
  rmsnormRef(xn, rstd, x, ffnNorm, 1, dim, eps);
  matmulRef(h1, xn, w1, 1, dim, ffn);
  matmulRef(h3, xn, w3, 1, dim, ffn);
  swigluRef(gate, h1, h3, ffn);
  matmulRef(x, gate, w2, 1, ffn, dim, true);
}
