/**
 * Causal scaled-dot-product attention with grouped-query heads (head h reads kv head ⌊h / (nHeads/nKvHeads)⌋,
 * as Meta's repeat_kv). The reference works one query row at a time: it keeps a length-T score row, never
 * the T×T matrix, and saves only each row's log-sum-exp for the backward, which recomputes the probabilities.
 */
import type { AttentionShape, FloatArray } from '../backend.js';
import { f16ToF32, f32ToF16, f32ToBf16, bf16ToF32 } from '../../util/half.js';

/**
 * One query row (q at offset qo) attending to key/value rows 0..last, which start at kvBase with stride kw:
 * writes the softmax-weighted sum of values to out at qo and returns the row's log-sum-exp of scaled scores.
 * `scores` (≥ last+1) and `acc` (≥ hd) are float64 scratch.
 */
function attendRow(
  out: FloatArray, q: FloatArray, qo: number, k: FloatArray, v: FloatArray, kvBase: number, kw: number, last: number,
  hd: number, scale: number, scores: Float64Array, acc: Float64Array,
): number {
  let max = -Infinity;
  for (let j = 0; j <= last; j++) {
    const ko = kvBase + j * kw;
    let dot = 0;
    for (let d = 0; d < hd; d++) dot += q[qo + d] * k[ko + d];
    const sc = dot * scale;
    scores[j] = sc;
    if (sc > max) max = sc;
  }
  let sum = 0;
  acc.fill(0);
  for (let j = 0; j <= last; j++) {
    const p = Math.exp(scores[j] - max);
    sum += p;
    const vo = kvBase + j * kw;
    for (let d = 0; d < hd; d++) acc[d] += p * v[vo + d];
  }
  for (let d = 0; d < hd; d++) out[qo + d] = acc[d] / sum;
  return max + Math.log(sum);
}

export function attentionRef(out: FloatArray, lse: FloatArray, q: FloatArray, k: FloatArray, v: FloatArray, s: AttentionShape): void {
  const { batch: B, seq: T, nHeads: H, nKvHeads: KV, headDim: hd } = s;
  const qw = H * hd;
  const kw = KV * hd;
  const rep = H / KV;
  const scale = 1 / Math.sqrt(hd);
  const scores = new Float64Array(T);
  const acc = new Float64Array(hd);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / rep);
      for (let i = 0; i < T; i++) {
        const qo = (b * T + i) * qw + h * hd;
        lse[(b * H + h) * T + i] = attendRow(out, q, qo, k, v, b * T * kw + kvh * hd, kw, i, hd, scale, scores, acc);
      }
    }
  }
}

/**
 * With P = exp(S − lse) recomputed row by row and D_i = dout_i·out_i:
 * dV += Pᵀ·dout, dS = P ∘ (dout·Vᵀ − D), dQ = dS·K·scale, dK += dSᵀ·Q·scale. Overwrites dq, dk, dv.
 */
export function attentionBackwardRef(
  dq: FloatArray, dk: FloatArray, dv: FloatArray, dout: FloatArray,
  q: FloatArray, k: FloatArray, v: FloatArray, out: FloatArray, lse: FloatArray, s: AttentionShape,
): void {
  const { batch: B, seq: T, nHeads: H, nKvHeads: KV, headDim: hd } = s;
  const qw = H * hd;
  const kw = KV * hd;
  const rep = H / KV;
  const scale = 1 / Math.sqrt(hd);
  dq.fill(0, 0, B * T * qw);
  dk.fill(0, 0, B * T * kw);
  dv.fill(0, 0, B * T * kw);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / rep);
      for (let i = 0; i < T; i++) {
        const qo = (b * T + i) * qw + h * hd;
        const l = lse[(b * H + h) * T + i];
        let D = 0;
        for (let d = 0; d < hd; d++) D += dout[qo + d] * out[qo + d];
        for (let j = 0; j <= i; j++) {
          const ko = (b * T + j) * kw + kvh * hd;
          let dot = 0;
          let dp = 0;
          for (let d = 0; d < hd; d++) {
            dot += q[qo + d] * k[ko + d];
            dp += dout[qo + d] * v[ko + d];
          }
          const p = Math.exp(dot * scale - l);
          const ds = p * (dp - D) * scale;
          for (let d = 0; d < hd; d++) {
            dv[ko + d] += p * dout[qo + d];
            dq[qo + d] += ds * k[ko + d];
            dk[ko + d] += ds * q[qo + d];
          }
        }
      }
    }
  }
}

/** Backend.attentionCached: n query rows at positions pos..pos+n-1 over cache rows 0..pos+n-1 (float64 sums). */
export function attentionCachedRef(
  out: FloatArray, q: FloatArray, k: FloatArray, v: FloatArray, n: number, pos: number, H: number, KV: number, hd: number,
): void {
  const qw = H * hd;
  const kw = KV * hd;
  const rep = H / KV;
  const scale = 1 / Math.sqrt(hd);
  const scores = new Float64Array(pos + n);
  const acc = new Float64Array(hd);
  for (let i = 0; i < n; i++) {
    const last = pos + i;
    for (let h = 0; h < H; h++) {
      const qo = i * qw + h * hd;
      attendRow(out, q, qo, k, v, Math.floor(h / rep) * hd, kw, last, hd, scale, scores, acc);
    }
  }
}

/**
 * attentionCachedRef over one layer of a cache held in IEEE half, head-major: kc/vc [nKvHeads, maxSeq, hd] (half
 * bits). The n new rows k/v [n, nKvHeads·hd] are first rounded into positions pos..pos+n-1, then the cached rows,
 * widened exactly, are attended as attentionCachedRef's.
 */
export function attentionCachedF16Ref(
  out: FloatArray, q: FloatArray, k: FloatArray, v: FloatArray, kc: Uint16Array, vc: Uint16Array,
  n: number, pos: number, H: number, KV: number, hd: number, maxSeq: number,
): void {
  if (pos + n > maxSeq) throw new RangeError(`attentionCachedF16: pos + n = ${pos + n} exceeds the cache's ${maxSeq} positions`);
  const kw = KV * hd;
  for (let i = 0; i < n; i++) {
    for (let g = 0; g < KV; g++) {
      for (let d = 0; d < hd; d++) {
        kc[(g * maxSeq + pos + i) * hd + d] = f32ToF16(k[i * kw + g * hd + d]);
        vc[(g * maxSeq + pos + i) * hd + d] = f32ToF16(v[i * kw + g * hd + d]);
      }
    }
  }
  const len = pos + n;
  const kf = new Float32Array(len * kw), vf = new Float32Array(len * kw);
  for (let j = 0; j < len; j++) {
    for (let g = 0; g < KV; g++) {
      for (let d = 0; d < hd; d++) {
        kf[j * kw + g * hd + d] = f16ToF32(kc[(g * maxSeq + j) * hd + d]);
        vf[j * kw + g * hd + d] = f16ToF32(vc[(g * maxSeq + j) * hd + d]);
      }
    }
  }
  attentionCachedRef(out, q, kf, vf, n, pos, H, KV, hd);
}

// ---- bfloat16 (--dtype bf16): FlashAttention's rounding points

/** Keys per tile of the bf16 forward's online softmax: where it rounds the probabilities depends on the tiling. */
export const ATTENTION_KEY_TILE = 64;

const bf16Round = (x: number): number => bf16ToF32(f32ToBf16(x));

/**
 * Causal attention with bf16 q, k, v (q and k after RoPE), as FlashAttention runs it in bfloat16: the scores
 * S = q·kᵀ, the softmax statistics, the row sums and the output accumulate in float (here float64); over each tile
 * of ATTENTION_KEY_TILE keys the unnormalised probabilities P̃ = exp(S·scale − m), m the running row maximum after
 * the tile, are rounded to bf16 (round to nearest even) before P̃·V, while the row sum l adds them unrounded.
 * out = O/l in float32, lse = m + log l (that of the unrounded softmax).
 */
export function attentionBf16Ref(out: FloatArray, lse: FloatArray, q: Uint16Array, k: Uint16Array, v: Uint16Array, s: AttentionShape): void {
  const { batch: B, seq: T, nHeads: H, nKvHeads: KV, headDim: hd } = s;
  const qw = H * hd, kw = KV * hd, rep = H / KV;
  const scale = 1 / Math.sqrt(hd);
  const qf = widenBf16(q), kf = widenBf16(k), vf = widenBf16(v);
  const sc = new Float64Array(ATTENTION_KEY_TILE);
  const acc = new Float64Array(hd);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kvBase = b * T * kw + Math.floor(h / rep) * hd;
      for (let i = 0; i < T; i++) {
        const qo = (b * T + i) * qw + h * hd;
        let m = -Infinity, l = 0;
        acc.fill(0);
        for (let j0 = 0; j0 <= i; j0 += ATTENTION_KEY_TILE) {
          const n = Math.min(ATTENTION_KEY_TILE, i + 1 - j0);
          let mx = -Infinity;
          for (let j = 0; j < n; j++) {
            const ko = kvBase + (j0 + j) * kw;
            let dot = 0;
            for (let d = 0; d < hd; d++) dot += qf[qo + d] * kf[ko + d];
            sc[j] = dot * scale;
            if (sc[j] > mx) mx = sc[j];
          }
          const mNew = Math.max(m, mx);
          const corr = Math.exp(m - mNew);
          l *= corr;
          for (let d = 0; d < hd; d++) acc[d] *= corr;
          for (let j = 0; j < n; j++) {
            const p = Math.exp(sc[j] - mNew);
            l += p;
            const pb = bf16Round(p);
            const vo = kvBase + (j0 + j) * kw;
            for (let d = 0; d < hd; d++) acc[d] += pb * vf[vo + d];
          }
          m = mNew;
        }
        for (let d = 0; d < hd; d++) out[qo + d] = acc[d] / l;
        lse[(b * H + h) * T + i] = m + Math.log(l);
      }
    }
  }
}

/**
 * Backward of attentionBf16 from bf16 q, k, v (after RoPE), out (the forward's output rounded to bf16) and dout,
 * with the forward's lse: D_i = dout_i·out_i, P = exp(S·scale − lse) and dS = P ∘ (dout·Vᵀ − D)·scale in float;
 * P rounded to bf16 before dV += Pᵀ·dout, dS rounded to bf16 before dQ = dS·K and dK += dSᵀ·Q (float sums).
 * Overwrites dq, dk, dv (float32).
 */
export function attentionBackwardBf16Ref(
  dq: FloatArray, dk: FloatArray, dv: FloatArray, dout: Uint16Array,
  q: Uint16Array, k: Uint16Array, v: Uint16Array, out: Uint16Array, lse: FloatArray, s: AttentionShape,
): void {
  const { batch: B, seq: T, nHeads: H, nKvHeads: KV, headDim: hd } = s;
  const qw = H * hd, kw = KV * hd, rep = H / KV;
  const scale = 1 / Math.sqrt(hd);
  const qf = widenBf16(q), kf = widenBf16(k), vf = widenBf16(v), of = widenBf16(out), df = widenBf16(dout);
  const gq = new Float64Array(B * T * qw), gk = new Float64Array(B * T * kw), gv = new Float64Array(B * T * kw);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / rep);
      for (let i = 0; i < T; i++) {
        const qo = (b * T + i) * qw + h * hd;
        const L = lse[(b * H + h) * T + i];
        let D = 0;
        for (let d = 0; d < hd; d++) D += df[qo + d] * of[qo + d];
        for (let j = 0; j <= i; j++) {
          const ko = (b * T + j) * kw + kvh * hd;
          let dot = 0, dp = 0;
          for (let d = 0; d < hd; d++) {
            dot += qf[qo + d] * kf[ko + d];
            dp += df[qo + d] * vf[ko + d];
          }
          const p = Math.exp(dot * scale - L);
          const pb = bf16Round(p);
          const ds = bf16Round(p * (dp - D) * scale);
          for (let d = 0; d < hd; d++) {
            gv[ko + d] += pb * df[qo + d];
            gq[qo + d] += ds * kf[ko + d];
            gk[ko + d] += ds * qf[qo + d];
          }
        }
      }
    }
  }
  for (let i = 0; i < gq.length; i++) dq[i] = gq[i];
  for (let i = 0; i < gk.length; i++) {
    dk[i] = gk[i];
    dv[i] = gv[i];
  }
}

function widenBf16(x: Uint16Array): Float64Array {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = bf16ToF32(x[i]);
  return out;
}
