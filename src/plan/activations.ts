/**
 * The activation memory of llama-ts's own training implementation as a closed form (what `Llama` allocates for one
 * micro-batch, model/llama.ts `layOutActivations`), by recompute policy and precision. `plan cluster` sizes
 * activations with it, and `bench train` / `info --memory` print it beside what a run measures; a test holds it
 * equal to the model's layout (activationLayoutBytes) for several configurations.
 *
 * Per rank of a tensor-parallel group of t (heads, KV heads and SwiGLU units divided by t), for N = b·s tokens, of
 * which n rows of the residual stream (N/t with sequence parallelism, else N); D model width, qw = (H/t)·hd,
 * kw = (KV/t)·hd, F = SwiGLU units / t, h = H/t. Each layer keeps for its backward:
 *   none        x, xMid [n,D] and rstd1, rstd2 [n], lse [N,h] (float32), and xn1, xn2 [N,D], q, att [N,qw],
 *               k, v [N,kw], h1, h3, gate [N,F]                                   (no T×T: attention saves its lse)
 *   selective   the same less xn1, xn2 and gate (recomputed from x, xMid, h1 and h3)
 *   full        x only (the block's forward runs again before its backward)
 * The second group is float32, or bfloat16 with --dtype bf16 (x, xMid, rstd and lse stay float32). Once per rank
 * (the workspace, sized by what the policy needs):
 *   - one buffer for the two norms' outputs when the layers do not keep them (selective and full: each is
 *     recomputed right before its use; with bf16 the float32 outputs are working copies, rounded at once);
 *   - float32: full recompute's own q, k, v, att and one buffer N·max(3·F, 2·qw + 2·kw) for h1, h3, gate (the
 *     block's forward leaves them for its backward), which then holds dAtt, dq, dk, dv; selective's gate;
 *     bf16: one float32 buffer N·max(2·(2·qw + 2·kw), 3·F) that holds either the attention's working copies (q, k,
 *     v, att, then the gradients dAtt, dq, dk, dv after them) or the feed-forward's (h1, h3, gate; dGate over the
 *     gate), never needed at once; and the bf16 set the recomputing layers share;
 *   - full: the per-row statistics and xMid of the recomputed block (its output is not recomputed: no w2 product);
 *   - the backward's scratch: dx [n,D], dxn [N,D], and (float32) one buffer N·max(F, 2·qw + 2·kw) holding dGate,
 *     then dAtt, dq, dk, dv (full: N·F, dGate only; d(h1), d(h3) are written over h1 and h3); with bf16 one bf16
 *     gradient buffer;
 *   - the head's block of logits (2^23 floats), which cross-entropy turns into dlogits in place:
 *     it lies in the bf16 working buffer, float32 full's h1/h3/gate buffer or the gradient scratch (nothing there
 *     is live while the head runs), and sizes that buffer when it is the larger;
 *   - with sequence parallelism the gathered/local gradient copies and a norm gain's gradient.
 * The final norm's input and output are saved (counted with the layers'), with bf16 also the output's bf16 copy.
 */
import { ffnHiddenDim, headDim, type LlamaConfig } from '../model/config.js';
import { headChunkRows, headPackedSize, type DTypeName, type Recompute } from '../model/llama.js';

export interface ActivationShape {
  batch: number;
  seq: number;
  tp?: number;
  sp?: boolean;
  recompute?: Recompute;
  dtype?: DTypeName;
  /** Bytes of a float buffer: 4, or 8 on the ref-f64 backend. Default 4. */
  bytesPerFloat?: number;
}

export interface ActivationBytes {
  /** One layer's saved activations. */
  perLayer: number;
  /** Every layer's saved activations and the final norm's input and output. */
  saved: number;
  /** Shared buffers, backward scratch and the head's logits block. */
  workspace: number;
  total: number;
}

export function activationBytes(c: LlamaConfig, o: ActivationShape): ActivationBytes {
  const t = o.tp ?? 1;
  const sp = Boolean(o.sp) && t > 1;
  const r = o.recompute ?? 'none';
  const low = o.dtype === 'bf16';
  const f = o.bytesPerFloat ?? 4;
  const lb = low ? 2 : f; // bytes of an element that bf16 lowers
  const N = o.batch * o.seq;
  const n = sp ? N / t : N;
  const D = c.dim;
  const hd = headDim(c);
  const h = c.nHeads / t;
  const qw = h * hd;
  const kw = (c.nKvHeads / t) * hd;
  const F = ffnHiddenDim(c) / t;
  const V = c.vocabSize / t;
  const full = r === 'full';
  const none = r === 'none';
  // per layer: float32 part, lowerable part (elements)
  const keptF = full ? n * D : 2 * n * D + 2 * n + N * h;
  const keptLow = full ? 0 : 2 * N * qw + 2 * N * kw + 2 * N * F + (none ? 2 * N * D + N * F : 0);
  const perLayer = keptF * f + keptLow * lb;
  const finalNorm = n * D + n + N * D;
  const saved = perLayer * c.nLayers + finalNorm * f + (low ? N * D * 2 : 0);
  // the shared set: one buffer for the two norms' outputs (unless each layer keeps them, in float32); the float32
  // matmul outputs full recompute leaves (each its own) or, with bf16, one buffer for the attention's or the
  // feed-forward's working copies; the gate selective recomputes; full's per-row statistics and xMid
  const xn = !none || low ? N * D : 0;
  // (with bf16 that buffer also holds the backward's gradient scratch: dGate, then dAtt, dq, dk, dv)
  // (float32 full: h1, h3, gate in one buffer that then holds dAtt, dq, dk, dv). The head's logits block lies in the
  // bf16 buffer, float32 full's h1/h3/gate buffer, or the backward's gradient scratch: whichever is larger sizes it.
  const chunkRows = headChunkRows(N, V);
  const logits = chunkRows * V;
  const sharedMatmul = low
    ? Math.max(N * Math.max(2 * (2 * qw + 2 * kw), 3 * F), logits)
    : full ? 2 * N * qw + 2 * N * kw + Math.max(N * Math.max(3 * F, 2 * qw + 2 * kw), logits) : none ? 0 : N * F;
  const sharedF = full ? 2 * n + N * h + n * D : 0;
  const sharedLow = low ? (none ? 0 : N * D + N * F) + (full ? 2 * N * qw + 2 * N * kw + 2 * N * F : 0) : 0;
  // the backward's scratch: dx, dxn, one buffer for dGate then dAtt, dq, dk, dv (float32 full: dGate only; bf16:
  // none), and with sequence parallelism the gathered and local copies and a norm gain's gradient
  const gradWork = low ? 0 : full ? N * F : Math.max(N * Math.max(F, 2 * qw + 2 * kw), logits);
  const scratch = n * D + N * D + gradWork + (sp ? N * D + n * D + D : 0);
  const dyLow = low ? Math.max(N * Math.max(D, qw, F), chunkRows * V) : 0;
  const workspace = (xn + sharedMatmul + sharedF + scratch) * f + (sharedLow + dyLow) * 2;
  return { perLayer, saved, workspace, total: saved + workspace };
}

export interface MemoryCategories {
  /** float32 master weights, and with bf16 their bfloat16 copy and the output head's two packed ones */
  weights: number;
  gradients: number;
  /** the two AdamW moments */
  optimizer: number;
  activations_saved: number;
  workspace: number;
  total: number;
}

/**
 * One process's training memory by category, predicted from the config (what `bench train` and `info --memory`
 * print beside the measured figures): float32 weights, gradients and AdamW moments (whatever the dtype), the bf16
 * weight copy with --dtype bf16 (and the head's weight packed for its two bf16 products), and the activations of
 * activationBytes.
 */
export function trainingMemoryCategories(c: LlamaConfig, o: ActivationShape & { params: number }): MemoryCategories {
  const f = o.bytesPerFloat ?? 4;
  const act = activationBytes(c, o);
  const V = c.vocabSize / (o.tp ?? 1), D = c.dim; // this rank's vocabulary rows of the head
  const weights = o.params * f + (o.dtype === 'bf16' ? o.params * 2 + 2 * (headPackedSize(D, V) + headPackedSize(V, D)) : 0);
  const gradients = o.params * f;
  const optimizer = 2 * o.params * f;
  return { weights, gradients, optimizer, activations_saved: act.saved, workspace: act.workspace, total: weights + gradients + optimizer + act.total };
}
