/**
 * The LLaMA transformer (Touvron et al. 2023) with a hand-written backward.
 *
 *   h = embed(tokens)
 *   for each layer:  h = h + Attention(RMSNorm(h));  h = h + FeedForward(RMSNorm(h))
 *   logits = RMSNorm(h)·Woutᵀ
 *
 * Each phase has its forward and backward side by side below. Activations needed by the backward are kept in
 * `Activations` (allocated once per batch shape); the T×T attention matrix never exists (see kernels/ops/attention.ts).
 * The output head and the loss run in row blocks so the [tokens, vocab] logits are never materialised whole.
 *
 * One block serves training, prefill and cached decoding (Meta's `forward(tokens, start_pos)`): `blockForward` runs
 * a layer over the rows it is given and asks an `AttentionSource` for the attention core. Training uses
 * `SelfAttention` (the rows are whole sequences; its backward is beside its forward); the decoder in
 * inference/generate.ts uses `CachedAttention` (the rows are new tokens appended to KV caches). Decoding passes one
 * set of buffers for every layer with the residual updated in place (x = xMid = out), training a set per layer.
 *
 * Tensor parallelism (Megatron-LM) comes from the outside: given a tensor-parallel group (`tp`, a Comm), the model
 * holds only its shard of each tensor (the split each tensor declares in params.ts), so each rank runs whole heads
 * and a slice of the SwiGLU units. The group communicates in four places only: the row-split products (wo, w2)
 * are summed (`rowParallel`); the input gradients of the column-split products (wq/wk/wv, w1/w3, the head) are
 * summed; the embedding looks up its vocabulary slice and sums; the cross-entropy combines each rank's partial
 * softmax statistics (`vocabParallelCrossEntropy`) so the full logits are never gathered in training. With one rank
 * each of these is the plain single-process operation.
 *
 * Sequence parallelism (`sp`, Korthikanti et al. 2022) in training: the residual stream, the RMSNorms and their
 * saved inputs are divided along the rows (each TP rank holds N/tp rows), so the norms' work and memory are not
 * repeated on every rank. A norm's output is all-gathered before the column-split products, and the row-split
 * products are reduce-scattered (instead of all-reduced) back onto the rows; the backward mirrors it, and the
 * norm gains' gradients, each rank holding its rows' share, are summed over the group. Decoding never splits rows.
 *
 * Adapters (`adapter`, model/lora.ts): an optional ProjectionAdapter is called after each of the block's seven
 * projections (y += ΔW·x) and after each projection's input gradient (its own gradients, dx += its share), in
 * training and decoding alike. With `trainBase` false the base weights are frozen: the backward still runs through
 * them but computes no gradient of the matrices, the embeddings or the head.
 *
 * Activation checkpointing (`recompute`, Korthikanti et al. 2022 §5): 'full' keeps only each block's input and runs
 * the block's forward again just before its backward; 'selective' keeps the matmul outputs and recomputes the cheap
 * element-wise parts (the two RMSNorm outputs and the SwiGLU gate) when the backward needs them. The recomputation
 * runs the same kernels on the same inputs, so the gradients are bitwise those of 'none'.
 *
 * Mixed precision (`dtype: 'bf16'`, as PyTorch's autocast to bfloat16): every matmul takes bfloat16 inputs — a bf16
 * copy of the weights (`lowWeights`, converted from the float32 master weights at each forward) and bf16 activations
 * — and accumulates in float32 into float32 outputs; gradients, the AdamW moments, the norms, softmax, attention's
 * statistics and the loss stay float32. Each saved activation except the residual stream (x, xMid) and the per-row
 * statistics (rstd, lse) is kept in bfloat16 (`BlockActs.lo`): the forward rounds each matmul output and continues
 * with the rounded value, so the backward, widening the saved copy into a float32 buffer that all layers share, sees
 * exactly what the forward used. Attention runs in bf16 as FlashAttention does (Backend.attentionBf16): q and k are
 * rotated (RoPE) in float32 from the float32 matmul outputs and rounded once after it; those rounded q, k and v are
 * what it reads and what is saved; scores, softmax statistics and sums are float32, the probabilities are rounded
 * to bf16 before P·V. Its backward reads the saved q, k, v and output and d(output) rounded to bf16 (nothing is
 * widened), and rounds P and dS before the products that take them.
 *
 * Workspace (what a run holds besides the saved activations; `layOutActivations`, closed form in plan/activations.ts):
 * buffers whose lifetimes do not overlap share memory. The backward's gradient scratch is one buffer (dGate, then
 * dAtt, dq, dk, dv), the SwiGLU backward writes d(h1), d(h3) over h1 and h3, the two norms' outputs share a buffer
 * when they are recomputed (or, with bf16, rounded at once), a full recompute skips the block's output projection,
 * and with bf16 the attention's and the feed-forward's float32 working copies and the gradient scratch share one
 * buffer. None of this changes an operation or its inputs: the gradients are bitwise what they were.
 */
import type { AttentionShape, Backend, FloatArray, RopeTable } from '../kernels/backend.js';
import { makeRopeTable } from '../kernels/backend.js';
import { ffnHiddenDim, headDim, type LlamaConfig } from './config.js';
import { matmulQuant, dequantize, rowBytes, x8Bytes, type QuantTensor } from '../kernels/ops/quant.js';
import { FlatTensors, paramLayout, initParams, initTensor, shardOf, type ParamLayout, type TensorSpec } from './params.js';
import { Rng } from '../util/rng.js';
import { UserError } from '../util/errors.js';
import { LOCAL_COMM, type Comm } from '../parallel/comm.js';

/** The buffers one block reads and writes, [N rows, width]. x, xMid and the block's output may be one buffer. */
export interface BlockActs {
  x: FloatArray; // residual stream entering the layer [N, D]
  rstd1: FloatArray;
  xn1: FloatArray; // attention_norm output [N, D]
  q: FloatArray; // after RoPE [N, H·hd]
  k: FloatArray; // after RoPE [N, KV·hd]
  v: FloatArray;
  att: FloatArray; // attention output before wo [N, H·hd]
  lse: FloatArray; // [B, H, T] (SelfAttention only)
  xMid: FloatArray; // residual after attention [N, D]
  rstd2: FloatArray;
  xn2: FloatArray;
  h1: FloatArray; // x·W1ᵀ [N, F]
  h3: FloatArray; // x·W3ᵀ [N, F]
  gate: FloatArray; // silu(h1)·h3 [N, F]
  /** Mixed precision: the bfloat16 copies the backward reads (the float32 fields above are then shared scratch). */
  lo?: LowActs;
}

/** bfloat16 bits of a block's saved activations (q and k after RoPE: the attention's inputs). */
export interface LowActs {
  xn1: Uint16Array;
  q: Uint16Array;
  k: Uint16Array;
  v: Uint16Array;
  att: Uint16Array;
  xn2: Uint16Array;
  h1: Uint16Array;
  h3: Uint16Array;
  gate: Uint16Array;
}

interface Activations {
  batch: number;
  seq: number;
  tokens: Int32Array;
  layers: BlockActs[];
  xFinal: FloatArray; // residual stream after the last layer
  rstdF: FloatArray;
  xnF: FloatArray; // final norm output (input of the head)
  // scratch for the backward
  dx: FloatArray;
  dxn: FloatArray;
  /** With sequence parallelism: dx gathered over all rows, dxn summed onto this rank's rows, a norm gain's gradient. */
  dxFull: FloatArray;
  dxnLocal: FloatArray;
  dwNorm: FloatArray;
  /**
   * The backward's gradient scratch, one buffer (`gradWork`) seen through views whose lifetimes do not overlap: the
   * feed-forward's dGate [N, F] (dead once the SwiGLU backward has run), then the attention's dAtt, dq, dk, dv. The
   * SwiGLU backward writes d(h1), d(h3) over h1 and h3 themselves (read for the last time there).
   */
  gradWork: FloatArray;
  dAtt: FloatArray;
  dq: FloatArray;
  dk: FloatArray;
  dv: FloatArray;
  dGate: FloatArray;
  /** The head's logits block: a view of lowWork (bf16), ffnWork (float32 full) or gradWork, all dead while it runs. */
  logitsChunk: FloatArray;
  /** The policy these buffers were laid out for. */
  recompute: Recompute;
  dtype: DTypeName;
  /** Mixed precision: the final norm's output and a gradient (the largest matmul dy) in bfloat16. */
  xnFLow: Uint16Array;
  dyLow: Uint16Array;
  /** The buffers the layers share (recomputed into, or float32 working copies with bf16): workspace, not saved. */
  shared: BlockActs;
  /**
   * With bf16 the float32 working copies of the attention (q, k, v, att) and of the feed-forward (h1, h3, gate) are
   * never needed at once (each is rounded into its bf16 copy; the backward widens the feed-forward's again, the bf16
   * attention backward reads its copies as they are): one buffer holds
   * either set, and the gradient scratch (then gradWork is empty): dGate is the float32 gate's place (the bf16
   * backward reads the gate's bf16 copy), dAtt, dq, dk, dv lie after the attention's working copies.
   */
  lowWork: FloatArray;
  /** Float32 full recompute: h1, h3 and gate of the recomputed block, then the attention's dAtt, dq, dk, dv. */
  ffnWork: FloatArray;
  /** Views into gradWork or lowWork: no memory of their own (not counted by activationBytes). */
  views: Set<ArrayBufferView>;
}

/** The block's linear projections, by their Meta names (wq … w3). */
export type Projection = 'wq' | 'wk' | 'wv' | 'wo' | 'w1' | 'w2' | 'w3';
export const PROJECTIONS: readonly Projection[] = ['wq', 'wk', 'wv', 'wo', 'w1', 'w2', 'w3'];

/**
 * A change to the block's projections applied from outside the weights (a LoRA adapter, model/lora.ts): blockForward
 * calls `forward` right after each projection y = x·Wᵀ of layer l, blockBackward calls `backward` right after the
 * projection's own input gradient. Both see the projection's input x [N, in] and its output (gradient) [N, out].
 */
export interface ProjectionAdapter {
  /** y[N, out] += ΔW·x for an adapted projection (nothing for the others). */
  forward(l: number, p: Projection, y: FloatArray, x: FloatArray, N: number): void;
  /** The adapter's own gradients from dy, and dx[N, in] += its contribution to the input gradient. */
  backward(l: number, p: Projection, dy: FloatArray, x: FloatArray, dx: FloatArray, N: number): void;
}

/**
 * Logits computed at once in the head (8 Mi floats, 32 MiB): bounded memory whatever the vocabulary (the block lies
 * in the backward's scratch, dead while the head runs). Fewer rows at a time cost speed: each block rereads the
 * head's weights and rewrites their gradient.
 */
const HEAD_CHUNK_FLOATS = 1 << 23;

export interface LlamaOptions {
  /** The tensor-parallel group; this rank holds its shard of every split tensor. Default: one process. */
  tp?: Comm;
  /** Sequence parallelism in training (with tp of more than one rank): rows of the residual stream divided too. */
  sp?: boolean;
  /** Activation checkpointing in training (see the header). Default 'none'. */
  recompute?: Recompute;
  /**
   * Inference on weights held elsewhere (`FlatTensors.external`: views of a mapped model file, io/formats.ts) instead
   * of a flat buffer of its own; such a model cannot be initialised or trained (init and ensureGrads throw).
   */
  weights?: FlatTensors;
  /** 'bf16': mixed precision (see the header). Default 'f32'. */
  dtype?: DTypeName;
}

/** Precision of the matmuls and saved activations in training: 'f32', or bfloat16 with float32 master weights. */
export type DTypeName = 'f32' | 'bf16';
export const DTYPES: readonly DTypeName[] = ['f32', 'bf16'];

export type Recompute = 'none' | 'selective' | 'full';
export const RECOMPUTE_POLICIES: readonly Recompute[] = ['none', 'selective', 'full'];

/**
 * Widths this rank works with: D = dim, hd = head dim, h/kv = query/key-value heads, qw/kw = their widths,
 * F = SwiGLU hidden units, V = vocabulary rows, v0 = the first vocabulary row held (all of them with one rank).
 */
export interface Widths {
  D: number;
  hd: number;
  h: number;
  kv: number;
  qw: number;
  kw: number;
  F: number;
  V: number;
  v0: number;
}

/**
 * Floats that `Llama.activations()` allocates for one batch shape (what `activationBytes()` reports after a forward,
 * divided by the float size): the saved activations of every layer, the backward's scratch and the loss head's
 * chunk. Written beside the allocation so that the memory estimate (model/memory.ts) follows it.
 */
export function activationFloats(c: LlamaConfig, batch: number, seq: number, o: { tp?: number; sp?: boolean; recompute?: Recompute } = {}): number {
  return activationElements(c, batch, seq, o).floats;
}

/** Bytes `Llama.activations()` allocates: its float buffers at `bytesPerFloat` (default 4) and, with bf16, its bf16 ones. */
export function activationLayoutBytes(
  c: LlamaConfig, batch: number, seq: number, o: { tp?: number; sp?: boolean; recompute?: Recompute; dtype?: DTypeName; bytesPerFloat?: number } = {},
): number {
  const e = activationElements(c, batch, seq, o);
  return e.floats * (o.bytesPerFloat ?? 4) + e.halves * 2;
}

/** The float and bfloat16 elements of the layout, counted by running it with allocators that only count. */
function activationElements(c: LlamaConfig, batch: number, seq: number, o: { tp?: number; sp?: boolean; recompute?: Recompute; dtype?: DTypeName }) {
  const t = o.tp ?? 1;
  const sp = Boolean(o.sp) && t > 1;
  let floats = 0;
  let halves = 0;
  layOutActivations(c, batch, seq, { sz: widths(c, t, 0), n: sp ? (batch * seq) / t : batch * seq, sp, recompute: o.recompute ?? 'none', dtype: o.dtype ?? 'f32' }, (k) => {
    floats += k;
    return new Float32Array(0);
  }, () => new Int32Array(0), (k) => {
    halves += k;
    return new Uint16Array(0);
  });
  return { floats, halves };
}

/** The widths rank `rank` of a tensor-parallel group of `t` works with. */
function widths(c: LlamaConfig, t: number, rank: number): Widths {
  const hd = headDim(c);
  const h = c.nHeads / t;
  const kv = c.nKvHeads / t;
  const V = c.vocabSize / t;
  return { D: c.dim, hd, h, kv, qw: h * hd, kw: kv * hd, F: ffnHiddenDim(c) / t, V, v0: rank * V };
}

/**
 * The activations and backward scratch of one batch shape, each buffer from `alloc` (the model's backend, or a
 * counter for activationFloats). n is the rows of the residual stream held here (N/tp with sequence parallelism).
 * What each layer keeps for its backward depends on the recompute policy; the rest is one set of buffers the layers
 * share (and recompute into).
 */
function layOutActivations(
  c: LlamaConfig, batch: number, seq: number, o: { sz: Widths; n: number; sp: boolean; recompute: Recompute; dtype: DTypeName }, alloc: (floats: number) => FloatArray,
  tokens = (n: number) => new Int32Array(n), allocLow = (n: number): Uint16Array => new Uint16Array(n),
): Activations {
  const N = batch * seq;
  const { qw, kw, F, h, V } = o.sz;
  const { n, sp, recompute: r } = o;
  const low = o.dtype === 'bf16';
  const attWidth = 2 * qw + 2 * kw; // dAtt, dq, dk, dv (or q, k, v, att) per row
  const views = new Set<ArrayBufferView>();
  /** Consecutive views of one buffer, of the given sizes. */
  const carve = (buf: FloatArray, sizes: number[]): FloatArray[] => {
    let off = 0;
    return sizes.map((k) => {
      const v = buf.subarray(off, (off += k));
      views.add(v);
      return v;
    });
  };
  // `keep`: saved per layer (in float32, or with bf16 in `lo` with one shared float32 set); `keepF`: always float32
  const keepF = (kept: boolean, shared: FloatArray, size: number) => (kept ? alloc(size) : shared);
  const keep = (kept: boolean, shared: FloatArray, size: number) => (kept && !low ? alloc(size) : shared);
  const sharedF = (needed: boolean, size: number) => alloc(needed ? size : 0);
  const full = r === 'full';
  // mixed precision: the bf16 copies are what a layer keeps (the float32 buffers are one shared set), by the same
  // policy; the shared bf16 set serves the layers that keep nothing (recomputed). The two norms' outputs, when not
  // kept, are recomputed right before each is used (or, the float32 ones with bf16, rounded at once), so one buffer
  // serves both.
  const keepLow = (kept: boolean, sharedLow: Uint16Array, size: number) => (kept ? allocLow(size) : sharedLow);
  const lowShared = (needed: boolean, size: number) => allocLow(low && needed ? size : 0);
  const xnLo = lowShared(r !== 'none', N * c.dim);
  const sharedLo: LowActs | undefined = low ? {
    xn1: xnLo, q: lowShared(full, N * qw), k: lowShared(full, N * kw), v: lowShared(full, N * kw),
    att: lowShared(full, N * qw), xn2: xnLo, h1: lowShared(full, N * F), h3: lowShared(full, N * F),
    gate: lowShared(r !== 'none', N * F),
  } : undefined;
  const xn = alloc(r !== 'none' || low ? N * c.dim : 0);
  // The float32 matmul outputs the layers share: with bf16 one buffer for the attention's or the feed-forward's
  // (Activations.lowWork), which also holds the backward's gradient scratch (dGate over the float32 gate, which the
  // bf16 backward does not read; dAtt, dq, dk, dv after the attention's working copies); in float32 full recompute,
  // q, k, v, att each its own and h1, h3, gate in ffnWork. The head's logits block goes in lowWork, ffnWork or
  // gradWork, whichever the run has: the head and the loss run between the last block's forward and the first
  // block's backward, when nothing in them is live.
  const chunkRows = headChunkRows(N, V);
  const logits = chunkRows * V;
  const lowWork = alloc(low ? Math.max(N * Math.max(2 * attWidth, 3 * F), logits) : 0);
  const [lq, lk, lv, latt] = carve(lowWork, low ? [N * qw, N * kw, N * kw, N * qw] : [0, 0, 0, 0]);
  const [lh1, lh3, lgate] = carve(lowWork, low ? [N * F, N * F, N * F] : [0, 0, 0]);
  // (ffnWork: the attention's gradients dAtt, dq, dk, dv go there once the feed-forward's backward is done with it)
  const ffnWork = alloc(full && !low ? Math.max(N * Math.max(3 * F, attWidth), logits) : 0);
  const [fh1, fh3, fgate] = carve(ffnWork, full && !low ? [N * F, N * F, N * F] : [0, 0, 0]);
  const sharedAlloc = (needed: boolean, view: FloatArray, size: number) => (low ? view : alloc(needed ? size : 0));
  const shared: BlockActs = {
    x: alloc(0), rstd1: sharedF(full, n), xn1: xn, q: sharedAlloc(full, lq, N * qw), k: sharedAlloc(full, lk, N * kw), v: sharedAlloc(full, lv, N * kw),
    att: sharedAlloc(full, latt, N * qw), lse: sharedF(full, batch * h * seq), xMid: sharedF(full, n * c.dim), rstd2: sharedF(full, n),
    xn2: xn, h1: full && !low ? fh1 : sharedAlloc(false, lh1, N * F), h3: full && !low ? fh3 : sharedAlloc(false, lh3, N * F),
    gate: full && !low ? fgate : sharedAlloc(r !== 'none', lgate, N * F),
  };
  const layers: BlockActs[] = [];
  for (let l = 0; l < c.nLayers; l++) {
    const matmulOutputs = !full; // selective keeps these and the residual stream
    const elementwise = r === 'none';
    layers.push({
      x: alloc(n * c.dim), rstd1: keepF(matmulOutputs, shared.rstd1, n), xn1: keep(elementwise, shared.xn1, N * c.dim),
      q: keep(matmulOutputs, shared.q, N * qw), k: keep(matmulOutputs, shared.k, N * kw), v: keep(matmulOutputs, shared.v, N * kw),
      att: keep(matmulOutputs, shared.att, N * qw), lse: keepF(matmulOutputs, shared.lse, batch * h * seq),
      xMid: keepF(matmulOutputs, shared.xMid, n * c.dim), rstd2: keepF(matmulOutputs, shared.rstd2, n), xn2: keep(elementwise, shared.xn2, N * c.dim),
      h1: keep(matmulOutputs, shared.h1, N * F), h3: keep(matmulOutputs, shared.h3, N * F), gate: keep(elementwise, shared.gate, N * F),
      lo: sharedLo && {
        xn1: keepLow(elementwise, sharedLo.xn1, N * c.dim), q: keepLow(matmulOutputs, sharedLo.q, N * qw), k: keepLow(matmulOutputs, sharedLo.k, N * kw),
        v: keepLow(matmulOutputs, sharedLo.v, N * kw), att: keepLow(matmulOutputs, sharedLo.att, N * qw), xn2: keepLow(elementwise, sharedLo.xn2, N * c.dim),
        h1: keepLow(matmulOutputs, sharedLo.h1, N * F), h3: keepLow(matmulOutputs, sharedLo.h3, N * F), gate: keepLow(elementwise, sharedLo.gate, N * F),
      },
    });
  }
  const dx = alloc(n * c.dim);
  const dxn = alloc(N * c.dim);
  const gradWork = alloc(low ? 0 : full ? N * F : Math.max(N * Math.max(F, attWidth), logits));
  const [logitsChunk] = carve(low ? lowWork : full ? ffnWork : gradWork, [logits]);
  const [dGate] = low ? [lgate] : carve(gradWork, [N * F]);
  const attGrads = low ? lowWork.subarray(N * attWidth) : full ? ffnWork : gradWork;
  const [dAtt, dq, dk, dv] = carve(attGrads, [N * qw, N * qw, N * kw, N * kw]);
  return {
    batch, seq, tokens: tokens(N), layers,
    xFinal: alloc(n * c.dim), rstdF: alloc(n), xnF: alloc(N * c.dim),
    dx, dxn, gradWork, dAtt, dq, dk, dv, dGate,
    dxFull: sp ? alloc(N * c.dim) : dx, dxnLocal: sp ? alloc(n * c.dim) : dxn, dwNorm: alloc(sp ? c.dim : 0),
    logitsChunk,
    recompute: r, lowWork, ffnWork, views,
    shared: { ...shared, lo: sharedLo },
    dtype: o.dtype, xnFLow: allocLow(low ? N * c.dim : 0), dyLow: allocLow(low ? Math.max(N * Math.max(c.dim, qw, F), chunkRows * V) : 0),
  };
}

/** bf16 values of a [rows, cols] bf16 weight packed by packBf16 (packBf16T: headPackedSize(cols, rows)). */
export function headPackedSize(cols: number, rows: number): number {
  return Math.ceil(cols / 2) * Math.ceil(rows / 32) * 64;
}

/** Rows of logits the head computes at once for N tokens over V vocabulary rows (see HEAD_CHUNK_FLOATS). */
export function headChunkRows(N: number, V: number): number {
  return Math.max(1, Math.min(N, Math.floor(HEAD_CHUNK_FLOATS / V)));
}

export class Llama {
  readonly layout: ParamLayout;
  readonly params: FlatTensors;
  grads: FlatTensors | null = null;
  readonly rope: RopeTable;
  readonly tp: Comm;
  /** Sequence parallelism in training forward/backward (see the header). */
  readonly sp: boolean;
  /** Activation checkpointing policy; may be changed between steps (the activations are laid out again). */
  recompute: Recompute;
  /** Precision of the matmuls and saved activations (see the header). */
  readonly dtype: DTypeName;
  readonly sz: Widths;
  /** Consulted at each projection of every block, in training and decoding (LoRA); null: the weights alone. */
  adapter: ProjectionAdapter | null = null;
  /**
   * false: the base weights are frozen; the backward still propagates through them (to an adapter's gradients) but
   * computes no gradient of the matrices, the embeddings or the head (the norm gains' still land in `grads`).
   */
  trainBase = true;
  /** Mixed precision: the bfloat16 copy of the weights the matmuls read, refreshed from params at each forward. */
  private lowParams: Uint16Array | null = null;
  /** Mixed precision: the output head's bf16 weight packed for its forward (packBf16) and input-gradient (packBf16T) products. */
  private headPacked: { fwd: Uint16Array; bwd: Uint16Array } | null = null;
  private lowScratch: Uint16Array | null = null;
  private acts: Activations | null = null;
  /** Weights held in a quantized block layout (inference): their products run the quantized kernels, params unread. */
  private readonly quant = new Map<TensorSpec, QuantTensor>();
  /** Q4_0 and Q8_0 weights' copies repacked 8 rows at a time (repackX8) for the native decode kernels (matmulQ4_0x8, matmulQ8_0x8). */
  private readonly x8 = new Map<TensorSpec, Uint8Array>();
  private partialBuf: FloatArray | null = null;
  private scatterBuf: FloatArray | null = null;

  constructor(readonly config: LlamaConfig, readonly backend: Backend, opts: LlamaOptions = {}) {
    this.tp = opts.tp ?? LOCAL_COMM;
    const t = this.tp.world;
    this.sp = Boolean(opts.sp) && t > 1;
    this.recompute = opts.recompute ?? 'none';
    this.dtype = opts.dtype ?? 'f32';
    if (this.dtype === 'bf16' && !backend.bf16) throw new UserError(`--dtype bf16: the ${backend.name} backend cannot compute in bfloat16 (use the native or ref backend)`);
    this.layout = paramLayout(config, { size: t, rank: this.tp.rank }); // checks that the group divides the model
    this.sz = widths(config, t, this.tp.rank);
    this.params = opts.weights ?? new FlatTensors(this.layout, backend);
    if (opts.weights && (t !== 1 || opts.weights.layout.total !== this.layout.total)) throw new Error('external weights: one process, the layout of this config');
    this.rope = makeRopeTable(this.sz.hd, config.maxSeqLen, config.ropeTheta);
  }

  /** Seeded initialisation; a tensor-parallel rank gets its shard of what one process would draw. */
  init(seed: number): void {
    if (!this.params.writable) throw new Error('init: this model runs on external (mapped, read-only) weights');
    if (this.tp.world === 1) return initParams(this.params, this.config, new Rng(seed));
    const rng = new Rng(seed);
    for (const t of this.layout.tensors) {
      const full = new Float64Array(t.fullShape.reduce((a, b) => a * b, 1));
      initTensor(t, full, this.config, rng);
      shardOf(t, full, this.params.view(t), this.layout.tp);
    }
  }

  /**
   * Holds the 2-D weight `spec` as quantized blocks (inference only: training reads and updates params). Its float32
   * view in params is left as it is and no longer read by forward passes. On the native backend a Q4_0 or Q8_0 weight
   * other than the embedding table is also repacked once into 8-row groups (repackX8: one extra copy, the blocks
   * stay where they are, mapped or read) for the decode products matmulQ4_0x8 / matmulQ8_0x8; `repack: false`
   * keeps only the blocks.
   */
  setQuantized(spec: TensorSpec, w: QuantTensor, opts: { repack?: boolean } = {}): void {
    if (this.tp.world !== 1) throw new Error('quantized weights need a single tensor-parallel rank');
    if (spec.shape.length !== 2 || w.rows !== spec.shape[0] || w.cols !== spec.shape[1]) throw new RangeError(`${spec.name}: quantized [${w.rows}, ${w.cols}] for shape [${spec.shape}]`);
    this.quant.set(spec, w);
    this.x8.delete(spec);
    // Q8_0 only on x86-64, where SIMD kernels run it (1.3-2.4x the per-row kernel); the portable 8-row Q8_0 loop is half as fast
    // as the per-row one, which the compiler vectorises (bench/quant-kernels.ts, generic path)
    // (the native backend runs in Node: process is defined there)
    const t = w.type, native = (opts.repack ?? true) && this.backend.name === 'native' && spec !== this.layout.tokEmbeddings;
    if (native && (t === 'Q4_0' || (t === 'Q8_0' && process.arch === 'x64'))) {
      // the backend's repack (native: 3-5 GB/s; the reference loop, repackX8, ~0.4 GB/s: 0.3 s of a 110M model's start)
      const out = new Uint8Array(x8Bytes(t, w.rows, w.cols));
      if (t === 'Q4_0') this.backend.repackQ4_0x8(out, w.data, w.rows, w.cols);
      else this.backend.repackQ8_0x8(out, w.data, w.rows, w.cols);
      this.x8.set(spec, out);
    }
  }

  /** Whether setQuantized repacked `spec` (decode reads the copy, not the blocks it was given). */
  repacked(spec: TensorSpec): boolean {
    return this.x8.has(spec);
  }

  /** Bytes of the repacked copies setQuantized made (0 when none). */
  repackedBytes(): number {
    let n = 0;
    for (const p of this.x8.values()) n += p.byteLength;
    return n;
  }

  /** The quantized form of a weight, if the model holds one. */
  quantized(spec: TensorSpec): QuantTensor | undefined {
    return this.quant.get(spec);
  }

  /**
   * The activation bytes held for the last forward's batch shape (0 before one), split as plan/activations.ts splits
   * them: saved for the backward (each layer's own buffers, the final norm's input and output) and workspace (the
   * buffers the layers share, the backward's scratch, the head's logits block).
   */
  activationBytesByKind(): { saved: number; workspace: number } {
    const a = this.acts;
    if (!a) return { saved: 0, workspace: 0 };
    const sharedBufs = new Set<ArrayBufferView>();
    for (const [k, b] of Object.entries(a.shared)) if (k !== 'lo') sharedBufs.add(b as FloatArray);
    if (a.shared.lo) for (const b of Object.values(a.shared.lo)) sharedBufs.add(b);
    const saved = new Set<ArrayBufferView>([a.xFinal, a.rstdF, a.xnF, a.xnFLow]);
    for (const l of a.layers) {
      for (const [k, b] of Object.entries(l)) if (k !== 'lo' && !sharedBufs.has(b as FloatArray)) saved.add(b as FloatArray);
      if (l.lo) for (const b of Object.values(l.lo)) if (!sharedBufs.has(b)) saved.add(b);
    }
    let s = 0;
    for (const b of saved) s += b.byteLength;
    return { saved: s, workspace: this.activationBytes() - s };
  }

  /** Bytes of the activations and backward scratch held for the last forward's batch shape (0 before one). */
  activationBytes(): number {
    const a = this.acts;
    if (!a) return 0;
    const bufs = new Set<FloatArray>();
    const bufs16 = new Set<Uint16Array>();
    for (const l of a.layers) {
      for (const [k, b] of Object.entries(l)) if (k !== 'lo') bufs.add(b as FloatArray);
      if (l.lo) for (const b of Object.values(l.lo)) bufs16.add(b);
    }
    for (const [k, b] of Object.entries(a)) {
      if (k === 'layers' || k === 'tokens' || k === 'shared' || typeof b !== 'object' || !('BYTES_PER_ELEMENT' in b)) continue;
      if (a.views.has(b as ArrayBufferView)) continue;
      if (b instanceof Uint16Array) bufs16.add(b);
      else bufs.add(b as FloatArray);
    }
    let n = 0;
    for (const b of bufs16) n += b.byteLength;
    for (const b of bufs) if (!a.views.has(b)) n += b.byteLength;
    return n;
  }

  ensureGrads(): FlatTensors {
    if (!this.params.writable) throw new Error('training needs writable weights: this model runs on a mapped file (load it with weights: "copy")');
    if (!this.grads) this.grads = new FlatTensors(this.layout, this.backend);
    return this.grads;
  }

  private activations(batch: number, seq: number): Activations {
    if (this.acts && this.acts.batch === batch && this.acts.seq === seq && this.acts.recompute === this.recompute) return this.acts;
    this.acts = null; // let the old buffers go before allocating new ones
    this.acts = layOutActivations(this.config, batch, seq, { sz: this.sz, n: this.rowSplit(batch * seq, this.sp).n, sp: this.sp, recompute: this.recompute, dtype: this.dtype }, (k) => this.backend.alloc(k), undefined, (k) => this.allocLow(k));
    return this.acts;
  }

  /**
   * Mixed precision: the weights' bfloat16 copy, converted from the float32 master weights (round to nearest even).
   * The embedding table is left out: its lookup reads the float32 table, no matmul reads its copy.
   */
  refreshLowWeights(): void {
    if (this.dtype !== 'bf16') return;
    const n = this.layout.total;
    if (!this.lowParams) this.lowParams = this.allocLow(n);
    const { offset, size } = this.layout.tokEmbeddings;
    const lo = this.lowParams, p = this.params.data;
    if (offset > 0) this.backend.toBf16(lo, p, offset);
    const end = offset + size;
    if (end < n) this.backend.toBf16(lo.subarray(end), p.subarray(end), n - end);
    // the head's weight packed once here, not by each of its products (one per logits block, and its backward's)
    const { V, D } = this.sz;
    const hp = (this.headPacked ??= { fwd: this.allocLow(headPackedSize(D, V)), bwd: this.allocLow(headPackedSize(V, D)) });
    const w = this.lowWeight(this.layout.output);
    this.backend.packBf16(hp.fwd, w, V, D);
    this.backend.packBf16T(hp.bwd, w, V, D);
  }

  /** A bfloat16 buffer from the backend (the native one advises large buffers onto huge pages, as its alloc). */
  private allocLow(n: number): Uint16Array {
    return this.backend.allocBf16 ? this.backend.allocBf16(n) : new Uint16Array(n);
  }

  /** Bytes of the bfloat16 weight copy and the head's two packed ones (0 in float32). */
  lowWeightBytes(): number {
    return this.dtype === 'bf16' ? this.layout.total * 2 + 2 * (headPackedSize(this.sz.D, this.sz.V) + headPackedSize(this.sz.V, this.sz.D)) : 0;
  }

  private lowWeight(spec: TensorSpec): Uint16Array {
    if (spec === this.layout.tokEmbeddings) throw new Error('lowWeight: the embedding table has no bf16 copy (refreshLowWeights)');
    if (!this.lowParams) this.refreshLowWeights();
    return (this.lowParams as Uint16Array).subarray(spec.offset, spec.offset + spec.size);
  }

  /** x in bfloat16: into `into` when given (a saved copy), else into a scratch buffer. */
  private lower(x: FloatArray, n: number, into?: Uint16Array): Uint16Array {
    let out = into;
    if (!out) {
      if (!this.lowScratch || this.lowScratch.length < n) this.lowScratch = this.allocLow(n);
      out = this.lowScratch;
    }
    this.backend.toBf16(out, x, n);
    return out;
  }

  /** Mixed precision: saves x[0..n) in bfloat16 and rounds x itself to those values (what the backward will see). */
  private round(x: FloatArray, lo: Uint16Array, n: number): void {
    this.backend.toBf16(lo, x, n);
    this.backend.fromBf16(x, lo, n);
  }

  /**
   * out[N, Nout] (+)= x[N, K]·Wᵀ: in float32, or with bf16 from x's bfloat16 copy xLow (converted here when null)
   * and the weights' bf16 copy.
   */
  private linear(out: FloatArray, x: FloatArray, xLow: Uint16Array | null, w: TensorSpec, N: number, K: number, Nout: number, accumulate = false): void {
    const q = this.quant.get(w); // inference on quantized blocks (setQuantized)
    if (q) return matmulQuant(this.backend, q, out, x, N, accumulate, this.x8.get(w));
    if (this.dtype === 'f32') return this.backend.matmul(out, x, this.params.view(w), N, K, Nout, accumulate);
    if (w === this.layout.output && this.headPacked) return this.backend.matmulBf16Packed(out, xLow ?? this.lower(x, N * K), this.headPacked.fwd, N, K, Nout, accumulate);
    this.backend.matmulBf16(out, xLow ?? this.lower(x, N * K), this.lowWeight(w), N, K, Nout, accumulate);
  }

  /**
   * Backward of linear: dW += dyᵀ·x into the gradient of w, and dx (+)= dy·W (skipped when dx is null). With bf16,
   * dy is rounded to bfloat16 once (into dyLow) for both products, or dy is null when dyLow already holds it; x's
   * bf16 copy is xLow.
   */
  private linearBackward(
    dx: FloatArray | null, dy: FloatArray | null, x: FloatArray, xLow: Uint16Array | null, w: TensorSpec, N: number, K: number, Nout: number,
    dyLow: Uint16Array, accumulate = false,
  ): void {
    const be = this.backend;
    const g = this.ensureGrads();
    if (this.dtype === 'f32') {
      if (!dy) throw new Error('linearBackward: float32 needs dy');
      if (this.trainBase) be.matmulBackwardWeight(g.view(w), dy, x, N, K, Nout);
      if (dx) be.matmulBackwardInput(dx, dy, this.params.view(w), N, K, Nout, accumulate);
      return;
    }
    if (dy) be.toBf16(dyLow, dy, N * Nout);
    if (this.trainBase) be.matmulBackwardWeightBf16(g.view(w), dyLow, xLow ?? this.lower(x, N * K), N, K, Nout);
    if (dx && w === this.layout.output && this.headPacked) be.matmulBackwardInputBf16Packed(dx, dyLow, this.headPacked.bwd, N, K, Nout, accumulate);
    else if (dx) be.matmulBackwardInputBf16(dx, dyLow, this.lowWeight(w), N, K, Nout, accumulate);
  }

  // ---------------------------------------------------------------- forward

  /** Runs the transformer over tokens[B·T] up to the final norm, keeping what the backward needs. */
  forward(tokens: Int32Array, batch: number, seq: number): void {
    const c = this.config;
    if (tokens.length !== batch * seq) throw new RangeError(`forward: ${tokens.length} tokens for batch ${batch} × seq ${seq}`);
    if (seq > c.maxSeqLen) throw new RangeError(`forward: sequence length ${seq} exceeds maxSeqLen ${c.maxSeqLen}`);
    const a = this.activations(batch, seq);
    this.refreshLowWeights();
    a.tokens.set(tokens);
    const attn = new SelfAttention(batch, seq);
    const split = this.sp;
    this.embed(a.layers.length ? a.layers[0].x : a.xFinal, a.tokens, split);
    for (let l = 0; l < c.nLayers; l++) this.blockForward(l, a.layers[l], l + 1 < c.nLayers ? a.layers[l + 1].x : a.xFinal, attn, split);
    const { n } = this.rowSplit(batch * seq, split);
    this.finalNorm(this.ownRows(a.xnF, batch * seq, split), a.rstdF, a.xFinal, n);
    this.gatherRows(a.xnF, batch * seq, split);
  }

  /** The rows of N this rank holds: all of them, or with sequence parallelism its n = N/tp from row r0. */
  private rowSplit(N: number, split: boolean): { n: number; r0: number } {
    if (!split) return { n: N, r0: 0 };
    const t = this.tp.world;
    if (N % t !== 0) throw new UserError(`sequence parallelism needs batch × seq (${N}) to divide by the ${t} tensor-parallel ranks`);
    return { n: N / t, r0: this.tp.rank * (N / t) };
  }

  /** This rank's rows of a [N, D] buffer (all of it without a row split). */
  private ownRows(buf: FloatArray, N: number, split: boolean): FloatArray {
    if (!split) return buf;
    const { n, r0 } = this.rowSplit(N, split);
    return buf.subarray(r0 * this.sz.D, (r0 + n) * this.sz.D);
  }

  /** With a row split: every rank's rows of buf [N, D] gathered in place (each wrote its own rows). */
  private gatherRows(buf: FloatArray, N: number, split: boolean): void {
    if (split) this.tp.allGather(this.ownRows(buf, N, split), buf.subarray(0, N * this.sz.D));
  }

  /** out[n,:] = tok_embeddings[tokens[n],:]; a tensor-parallel rank looks up its vocabulary rows and the group sums. */
  embed(out: FloatArray, tokens: Int32Array, split = false): void {
    const q = this.quant.get(this.layout.tokEmbeddings);
    if (q) return this.embedQuantized(out, tokens, q);
    const table = this.params.view(this.layout.tokEmbeddings);
    const { D, V, v0 } = this.sz;
    if (this.tp.world === 1) return this.backend.embedding(out, table, tokens, D);
    const N = tokens.length;
    const rows = split ? this.partial(N * D) : out; // with a row split, out holds only this rank's rows
    for (let n = 0; n < N; n++) {
      const t = tokens[n] - v0;
      if (t >= 0 && t < V) rows.set(table.subarray(t * D, (t + 1) * D), n * D);
      else rows.fill(0, n * D, (n + 1) * D);
    }
    this.sumRows(rows, out, N, split);
  }

  /** embed from a quantized table (inference, one rank): each token's row dequantized from its blocks. */
  private embedQuantized(out: FloatArray, tokens: Int32Array, q: QuantTensor): void {
    const { D, V } = this.sz;
    const rb = rowBytes(q.type, D);
    for (let n = 0; n < tokens.length; n++) {
      const t = tokens[n];
      if (!(t >= 0 && t < V)) throw new RangeError(`embedding: token id ${t} at position ${n} is outside the vocabulary (0..${V - 1})`);
      out.set(dequantize(q.type, q.data.subarray(t * rb, (t + 1) * rb), D), n * D);
    }
  }

  /** Sums the partial rows [N, D] over the group: in place, or with a row split onto this rank's rows in `own`. */
  private sumRows(part: FloatArray, own: FloatArray, N: number, split: boolean): FloatArray {
    const D = this.sz.D;
    if (!split) {
      this.tp.allReduce(part.subarray(0, N * D));
      return part;
    }
    this.tp.reduceScatter(part.subarray(0, N * D), own.subarray(0, this.rowSplit(N, split).n * D));
    return own;
  }

  /** A scratch buffer of at least n floats (the partial products of the row-split layers). */
  private partial(n: number): FloatArray {
    if (!this.partialBuf || this.partialBuf.length < n) this.partialBuf = this.backend.alloc(n);
    return this.partialBuf;
  }

  /** Backward of embed: dtable[tokens[n],:] += dout[n,:] for the vocabulary rows this rank holds. */
  private embedBackward(dtable: FloatArray, dout: FloatArray, tokens: Int32Array): void {
    const { D, V, v0 } = this.sz;
    if (this.tp.world === 1) return this.backend.embeddingBackward(dtable, dout, tokens, D);
    for (let n = 0; n < tokens.length; n++) {
      const t = tokens[n] - v0;
      if (t < 0 || t >= V) continue;
      for (let i = 0; i < D; i++) dtable[t * D + i] += dout[n * D + i];
    }
  }

  /**
   * out += inp[N,K]·Wᵀ for a row-split W: each rank's product is partial over K, and the group sums them (onto
   * this rank's rows of out with a row split).
   */
  private rowParallel(out: FloatArray, inp: FloatArray, inpLow: Uint16Array | null, w: TensorSpec, N: number, K: number, split = false): void {
    const be = this.backend;
    const D = this.sz.D;
    if (this.tp.world === 1) return this.linear(out, inp, inpLow, w, N, K, D, true);
    const part = this.partial(N * D);
    this.linear(part, inp, inpLow, w, N, K, D);
    const n = this.rowSplit(N, split).n;
    if (split && (!this.scatterBuf || this.scatterBuf.length < n * D)) this.scatterBuf = be.alloc(n * D);
    const sum = this.sumRows(part, split ? (this.scatterBuf as FloatArray) : part, N, split);
    be.add(out, out, sum, n * D);
  }

  /**
   * Sums the partial input gradients [N, D] of column-split products over the tensor-parallel group; returns the
   * buffer with the summed rows this rank holds (dx itself, or `own` with a row split).
   */
  private sumInputGrad(dx: FloatArray, N: number, split = false, own: FloatArray = dx): FloatArray {
    if (this.tp.world === 1) return dx;
    return this.sumRows(dx, own, N, split);
  }

  /**
   * Layer `l` over the N = attn.rows rows in s.x: out = xMid + FFN(norm(xMid)), xMid = x + Attention(norm(x)).
   * out may be s.x (and s.xMid may be s.x): the residual is then updated in place. out null (a full recompute before
   * the backward): everything the backward reads, without the output's projection (w2).
   */
  blockForward(l: number, s: BlockActs, out: FloatArray | null, attn: AttentionSource, split = false): void {
    const c = this.config;
    const be = this.backend;
    const p = this.params;
    const w = this.layout.layers[l];
    const N = attn.rows;
    const { D, qw, kw, F } = this.sz;
    const n = this.rowSplit(N, split).n; // rows of the residual stream held here
    // attention block
    const lo = this.dtype === 'bf16' ? s.lo : undefined; // training with bf16: save bfloat16 copies
    be.rmsnorm(this.ownRows(s.xn1, N, split), s.rstd1, s.x, p.view(w.attentionNorm), n, D, c.normEps);
    this.gatherRows(s.xn1, N, split);
    const xn1 = lo ? this.lower(s.xn1, N * D, lo.xn1) : null;
    this.linear(s.q, s.xn1, xn1, w.wq, N, D, qw);
    this.linear(s.k, s.xn1, xn1, w.wk, N, D, kw);
    this.linear(s.v, s.xn1, xn1, w.wv, N, D, kw);
    const ad = this.adapter;
    if (ad) for (const [pr, y] of [['wq', s.q], ['wk', s.k], ['wv', s.v]] as const) ad.forward(l, pr, y, s.xn1, N);
    attn.forward(this, l, s); // with bf16 it rounds q, k (after RoPE) and v into lo
    const att = lo ? this.lower(s.att, N * qw, lo.att) : null;
    if (lo) be.fromBf16(s.att, lo.att, N * qw);
    if (s.xMid !== s.x) s.xMid.set(s.x.subarray(0, n * D));
    this.rowParallel(s.xMid, s.att, att, w.wo, N, qw, split);
    ad?.forward(l, 'wo', s.xMid, s.att, N);
    // feed-forward block
    be.rmsnorm(this.ownRows(s.xn2, N, split), s.rstd2, s.xMid, p.view(w.ffnNorm), n, D, c.normEps);
    this.gatherRows(s.xn2, N, split);
    const xn2 = lo ? this.lower(s.xn2, N * D, lo.xn2) : null;
    this.linear(s.h1, s.xn2, xn2, w.w1, N, D, F);
    this.linear(s.h3, s.xn2, xn2, w.w3, N, D, F);
    ad?.forward(l, 'w1', s.h1, s.xn2, N);
    ad?.forward(l, 'w3', s.h3, s.xn2, N);
    if (lo) {
      this.round(s.h1, lo.h1, N * F);
      this.round(s.h3, lo.h3, N * F);
    }
    be.swiglu(s.gate, s.h1, s.h3, N * F);
    const gate = lo ? this.lower(s.gate, N * F, lo.gate) : null;
    if (!out) return;
    if (out !== s.xMid) out.set(s.xMid.subarray(0, n * D));
    this.rowParallel(out, s.gate, gate, w.w2, N, F, split);
    ad?.forward(l, 'w2', out, s.gate, N);
  }

  /**
   * Whether a decode step of one new token can run each layer as one backend call (decodeLayer): the native backend,
   * float32 weights of its own or mapped (none quantized), no adapter, one tensor-parallel rank. Else blockForward.
   */
  canDecodeFused(): boolean {
    return this.backend.name === 'native' && this.dtype === 'f32' && this.quant.size === 0 && this.adapter === null && this.tp.world === 1;
  }

  /**
   * blockForward of layer l for one new token of one float32 cache at position cache.length, as one backend call
   * (Backend.decodeLayer: the same kernels in the same order, so the same bits; no return to JavaScript between them).
   * The residual s.x is updated in place; s's other buffers are scratch. Only when canDecodeFused().
   */
  decodeLayer(l: number, s: BlockActs, cache: KvRows): void {
    const w = this.layout.layers[l];
    const p = this.params;
    const { D, kw, F, h, kv } = this.sz;
    const pos = cache.length;
    const base = l * cache.maxSeq * kw;
    const kc = cache.k.subarray(base, base + (pos + 1) * kw) as FloatArray, vc = cache.v.subarray(base, base + (pos + 1) * kw) as FloatArray;
    this.backend.decodeLayer(
      s.x, s.xn1, s.rstd1, s.q, s.k, s.v, s.att, s.h1, s.h3, s.gate,
      p.view(w.attentionNorm), p.view(w.wq), p.view(w.wk), p.view(w.wv), p.view(w.wo), p.view(w.ffnNorm), p.view(w.w1), p.view(w.w3), p.view(w.w2),
      kc, vc, this.rope, D, h, kv, F, pos, this.config.normEps,
    );
  }

  /** The final RMSNorm over `rows` rows of the residual stream. */
  finalNorm(xn: FloatArray, rstd: FloatArray, x: FloatArray, rows: number): void {
    this.backend.rmsnorm(xn, rstd, x, this.params.view(this.layout.norm), rows, this.config.dim, this.config.normEps);
  }

  /** The output head over the whole vocabulary: logits[rows, vocab] = xn[rows, D]·Woutᵀ (gathered from the group). */
  head(logits: FloatArray, xn: FloatArray, rows: number): void {
    const { V } = this.sz;
    const t = this.tp.world;
    if (t === 1) return this.headShard(logits, xn, rows);
    const part = this.backend.alloc(rows * V);
    const all = this.backend.alloc(t * rows * V);
    this.headShard(part, xn, rows);
    this.tp.allGather(part, all);
    for (let k = 0; k < t; k++) for (let r = 0; r < rows; r++) logits.set(all.subarray((k * rows + r) * V, (k * rows + r + 1) * V), r * V * t + k * V);
  }

  /** This rank's vocabulary slice of the head: logits[rows, V/tp]. */
  private headShard(logits: FloatArray, xn: FloatArray, rows: number, xnLow: Uint16Array | null = null): void {
    this.linear(logits, xn, xnLow, this.layout.output, rows, this.sz.D, this.sz.V);
  }

  // ---------------------------------------------------------------- head + loss

  /**
   * Output head and softmax cross-entropy over the last forward's tokens. Returns the summed loss over targets >= 0.
   * With gradScale !== null it also runs the head's backward: dWout += dlogitsᵀ·xn, and d(xn) into the scratch
   * buffer the rest of the backward starts from. Targets < 0 are ignored.
   */
  loss(targets: Int32Array, gradScale: number | null): number {
    const a = this.requireActs('loss');
    const be = this.backend;
    const N = a.batch * a.seq;
    if (targets.length !== N) throw new RangeError(`loss: ${targets.length} targets for ${N} positions`);
    const { D, V } = this.sz;
    const chunk = a.logitsChunk.length / V;
    const low = this.dtype === 'bf16';
    if (low) be.toBf16(a.xnFLow, a.xnF, N * D);
    const dWout = gradScale !== null ? this.ensureGrads().view(this.layout.output) : null;
    let total = 0;
    for (let r0 = 0; r0 < N; r0 += chunk) {
      const rows = Math.min(chunk, N - r0);
      const xn = a.xnF.subarray(r0 * D, (r0 + rows) * D);
      const xnLow = low ? a.xnFLow.subarray(r0 * D, (r0 + rows) * D) : null;
      const logits = a.logitsChunk.subarray(0, rows * V);
      this.headShard(logits, xn, rows, xnLow);
      const t = targets.subarray(r0, r0 + rows);
      if (dWout && low && this.tp.world === 1) {
        // the gradient of the logits straight into its bf16 copy (the float32 values are read by nothing else)
        total += be.crossEntropyBf16(logits, t, rows, V, a.dyLow, gradScale as number);
        this.linearBackward(a.dxn.subarray(r0 * D, (r0 + rows) * D), null, xn, xnLow, this.layout.output, rows, D, V, a.dyLow);
      } else if (dWout) {
        total += this.crossEntropy(logits, t, rows, logits, gradScale as number);
        this.linearBackward(a.dxn.subarray(r0 * D, (r0 + rows) * D), logits, xn, xnLow, this.layout.output, rows, D, V, a.dyLow);
      } else {
        total += this.crossEntropy(logits, t, rows, null, 0);
      }
    }
    if (dWout) this.sumInputGrad(a.dxn, N, this.sp, a.dxnLocal);
    return total;
  }

  /** Softmax cross-entropy of logits [rows, V] (this rank's vocabulary slice); see Backend.crossEntropy. */
  private crossEntropy(logits: FloatArray, targets: Int32Array, rows: number, dlogits: FloatArray | null, gradScale: number): number {
    if (this.tp.world === 1) return this.backend.crossEntropy(logits, targets, rows, this.sz.V, dlogits, gradScale);
    return vocabParallelCrossEntropy(this.tp, this.backend, logits, targets, rows, this.sz.V, this.sz.v0, this.config.vocabSize, dlogits, gradScale);
  }

  /** Logits for the given positions of the last forward (all positions when omitted): [positions, vocab]. */
  logits(positions?: number[]): FloatArray {
    const a = this.requireActs('logits');
    const c = this.config;
    const rows = positions ?? Array.from({ length: a.batch * a.seq }, (_, i) => i);
    const out = this.backend.alloc(rows.length * c.vocabSize);
    if (this.tp.world === 1) {
      rows.forEach((r, i) => this.head(out.subarray(i * c.vocabSize, (i + 1) * c.vocabSize), a.xnF.subarray(r * c.dim, (r + 1) * c.dim), 1));
    } else {
      const xn = this.backend.alloc(rows.length * c.dim);
      rows.forEach((r, i) => xn.set(a.xnF.subarray(r * c.dim, (r + 1) * c.dim), i * c.dim));
      this.head(out, xn, rows.length);
    }
    return out;
  }

  // ---------------------------------------------------------------- backward

  /**
   * Backward through the layers after `loss(targets, scale)`; accumulates into this.grads. `gradsReady(offset, size)`
   * is told each span of the flat gradient buffer as soon as the backward is done with it (the final norm and the
   * head, then each layer from the last, then the embeddings), so data-parallel training can start reducing those
   * gradients while the rest of the backward runs. The spans cover the buffer exactly once.
   */
  backward(gradsReady?: (offset: number, size: number) => void): void {
    const a = this.requireActs('backward');
    const g = this.ensureGrads();
    const c = this.config;
    const L = this.layout;
    const N = a.batch * a.seq;
    const split = this.sp;
    const n = this.rowSplit(N, split).n;
    a.dx.fill(0);
    this.normBackward(L.norm, a.dxnLocal, a.xFinal, a.rstdF, n, a, g);
    gradsReady?.(L.norm.offset, L.total - L.norm.offset);
    const attn = new SelfAttention(a.batch, a.seq);
    for (let l = c.nLayers - 1; l >= 0; l--) {
      if (a.recompute === 'full') this.blockForward(l, a.layers[l], null, attn, split); // everything but x again (not the output)
      this.blockBackward(l, a.layers[l], a, g, attn);
      const w = L.layers[l];
      gradsReady?.(w.attentionNorm.offset, w.w3.offset + w.w3.size - w.attentionNorm.offset);
    }
    if (this.trainBase) this.embedBackward(g.view(L.tokEmbeddings), this.allRows(a.dx, a.dxFull, N), a.tokens);
    gradsReady?.(L.tokEmbeddings.offset, L.tokEmbeddings.size);
  }

  /** Backward of blockForward. a.dx holds ∂L/∂(layer output) on entry and ∂L/∂(layer input) on exit (this rank's rows). */
  private blockBackward(l: number, s: BlockActs, a: Activations, g: FlatTensors, attn: SelfAttention): void {
    const be = this.backend;
    const p = this.params;
    const w = this.layout.layers[l];
    const N = attn.rows;
    const { D, qw, kw, F } = this.sz;
    const split = this.sp;
    const n = this.rowSplit(N, split).n;
    const lo = this.dtype === 'bf16' ? (s.lo as LowActs) : null;
    if (lo) { // the float32 working copies of what the feed-forward backward reads
      be.fromBf16(s.h1, lo.h1, N * F);
      be.fromBf16(s.h3, lo.h3, N * F);
    }
    if (a.recompute === 'selective') this.recomputeFfnInputs(l, s, N);
    // feed-forward block: out = xMid + gate·W2ᵀ
    const ad = this.adapter; // adapters run in float32 only (LoraAdapter.attach)
    let dx = this.allRows(a.dx, a.dxFull, N);
    this.linearBackward(a.dGate, dx, s.gate, lo && lo.gate, w.w2, N, F, D, a.dyLow);
    ad?.backward(l, 'w2', dx, s.gate, a.dGate, N);
    // d(h1), d(h3) over h1 and h3 (their last read; see Activations.gradWork)
    const dh1 = s.h1;
    const dh3 = s.h3;
    be.swigluBackward(dh1, dh3, a.dGate, s.h1, s.h3, N * F);
    this.linearBackward(a.dxn, dh1, s.xn2, lo && lo.xn2, w.w1, N, D, F, a.dyLow);
    this.linearBackward(a.dxn, dh3, s.xn2, lo && lo.xn2, w.w3, N, D, F, a.dyLow, true);
    ad?.backward(l, 'w1', dh1, s.xn2, a.dxn, N);
    ad?.backward(l, 'w3', dh3, s.xn2, a.dxn, N);
    this.normBackward(w.ffnNorm, this.sumInputGrad(a.dxn, N, split, a.dxnLocal), s.xMid, s.rstd2, n, a, g);
    // attention block: xMid = x + att·Woᵀ
    dx = this.allRows(a.dx, a.dxFull, N);
    this.linearBackward(a.dAtt, dx, s.att, lo && lo.att, w.wo, N, qw, D, a.dyLow);
    ad?.backward(l, 'wo', dx, s.att, a.dAtt, N);
    attn.backward(this, s, a); // with bf16 from the saved bf16 copies
    // selective and full: one buffer holds both norms' outputs, and the feed-forward's was the last written
    if (a.recompute !== 'none') this.recomputeNorm(s.xn1, s.rstd1, s.x, w.attentionNorm, N, lo && lo.xn1);
    this.linearBackward(a.dxn, a.dq, s.xn1, lo && lo.xn1, w.wq, N, D, qw, a.dyLow);
    this.linearBackward(a.dxn, a.dk, s.xn1, lo && lo.xn1, w.wk, N, D, kw, a.dyLow, true);
    this.linearBackward(a.dxn, a.dv, s.xn1, lo && lo.xn1, w.wv, N, D, kw, a.dyLow, true);
    if (ad) for (const [pr, dy] of [['wq', a.dq], ['wk', a.dk], ['wv', a.dv]] as const) ad.backward(l, pr, dy, s.xn1, a.dxn, N);
    this.normBackward(w.attentionNorm, this.sumInputGrad(a.dxn, N, split, a.dxnLocal), s.x, s.rstd1, n, a, g);
  }

  /** Selective recompute: the SwiGLU gate and the FFN norm's output of layer l, before its feed-forward backward. */
  private recomputeFfnInputs(l: number, s: BlockActs, N: number): void {
    const lo = this.dtype === 'bf16' ? s.lo : undefined;
    this.backend.swiglu(s.gate, s.h1, s.h3, N * this.sz.F);
    if (lo) this.lower(s.gate, N * this.sz.F, lo.gate);
    this.recomputeNorm(s.xn2, s.rstd2, s.xMid, this.layout.layers[l].ffnNorm, N, lo && lo.xn2);
  }

  /** Selective recompute: an RMSNorm output from its saved input, as blockForward computed it. */
  private recomputeNorm(xn: FloatArray, rstd: FloatArray, x: FloatArray, gain: TensorSpec, N: number, xnLow?: Uint16Array | null): void {
    const split = this.sp;
    this.backend.rmsnorm(this.ownRows(xn, N, split), rstd, x, this.params.view(gain), this.rowSplit(N, split).n, this.sz.D, this.config.normEps);
    this.gatherRows(xn, N, split);
    if (xnLow) this.lower(xn, N * this.sz.D, xnLow);
  }

  /** a.dx += ∂/∂x of an RMSNorm over this rank's rows; its gain's gradient, with a row split, summed over the group. */
  private normBackward(spec: TensorSpec, dxn: FloatArray, x: FloatArray, rstd: FloatArray, rows: number, a: Activations, g: FlatTensors): void {
    const be = this.backend;
    const D = this.sz.D;
    if (!this.sp) return be.rmsnormBackward(a.dx, g.view(spec), dxn, x, this.params.view(spec), rstd, rows, D);
    a.dwNorm.fill(0); // this micro-batch's share only: the gradient buffer may already hold earlier micro-batches
    be.rmsnormBackward(a.dx, a.dwNorm, dxn, x, this.params.view(spec), rstd, rows, D);
    this.tp.allReduce(a.dwNorm);
    be.add(g.view(spec), g.view(spec), a.dwNorm, D);
  }

  /** With a row split: every rank's rows of dx [n, D] gathered into full [N, D]; else dx itself. */
  private allRows(dx: FloatArray, full: FloatArray, N: number): FloatArray {
    if (!this.sp) return dx;
    this.tp.allGather(dx.subarray(0, this.rowSplit(N, true).n * this.sz.D), full.subarray(0, N * this.sz.D));
    return full;
  }

  private requireActs(op: string): Activations {
    if (!this.acts) throw new Error(`${op}: call forward() first`);
    return this.acts;
  }

  /** Convenience: mean loss and gradients (accumulated, scaled by gradScale) for one batch. */
  forwardBackward(tokens: Int32Array, targets: Int32Array, batch: number, seq: number, gradScale: number): number {
    this.forward(tokens, batch, seq);
    const sum = this.loss(targets, gradScale);
    this.backward();
    return sum;
  }
}

// ------------------------------------------------------------------ attention sources

/**
 * The attention core of a block (rotary embeddings, then attention of q over keys and values): the one part that
 * differs between training over whole sequences and decoding over a KV cache. `rows` is the block's N.
 */
export interface AttentionSource {
  readonly rows: number;
  /** Rotates s.q and s.k to their positions and writes the attention output of layer l into s.att. */
  forward(m: Llama, l: number, s: BlockActs): void;
}

/** Causal self-attention within `batch` whole sequences of `seq` tokens starting at position 0 (training). */
export class SelfAttention implements AttentionSource {
  readonly rows: number;
  constructor(readonly batch: number, readonly seq: number) {
    this.rows = batch * seq;
  }

  private shape(m: Llama): AttentionShape {
    return { batch: this.batch, seq: this.seq, nHeads: m.sz.h, nKvHeads: m.sz.kv, headDim: m.sz.hd };
  }

  /**
   * RoPE on s.q and s.k, then attention into s.att. With bf16 (training: s.lo) q and k are rounded after the
   * rotation and v as it is, into the saved copies, and the bf16 attention reads those.
   */
  forward(m: Llama, _l: number, s: BlockActs): void {
    const { backend: be, sz } = m;
    be.rope(s.q, this.batch, this.seq, sz.h, m.rope);
    be.rope(s.k, this.batch, this.seq, sz.kv, m.rope);
    const lo = m.dtype === 'bf16' ? s.lo : undefined;
    if (!lo) return be.attention(s.att, s.lse, s.q, s.k, s.v, this.shape(m));
    const N = this.rows;
    be.toBf16(lo.q, s.q, N * sz.qw);
    be.toBf16(lo.k, s.k, N * sz.kw);
    be.toBf16(lo.v, s.v, N * sz.kw);
    be.attentionBf16(s.att, s.lse, lo.q, lo.k, lo.v, this.shape(m));
  }

  /**
   * From d(att) in g.dAtt to d(q), d(k), d(v) before the rotation, in g.dq, g.dk, g.dv. With bf16 d(att) is rounded
   * into g.dyLow (free between the output projection's backward and the q/k/v projections') and the bf16 backward
   * reads it with the saved q, k, v and output.
   */
  backward(m: Llama, s: BlockActs, g: { dq: FloatArray; dk: FloatArray; dv: FloatArray; dAtt: FloatArray; dyLow: Uint16Array }): void {
    const { backend: be, sz } = m;
    const lo = m.dtype === 'bf16' ? s.lo : undefined;
    if (lo) {
      const dout = g.dyLow.subarray(0, this.rows * sz.qw);
      be.toBf16(dout, g.dAtt, this.rows * sz.qw);
      be.attentionBackwardBf16(g.dq, g.dk, g.dv, dout, lo.q, lo.k, lo.v, lo.att, s.lse, this.shape(m));
    } else {
      be.attentionBackward(g.dq, g.dk, g.dv, g.dAtt, s.q, s.k, s.v, s.att, s.lse, this.shape(m));
    }
    be.ropeBackward(g.dq, this.batch, this.seq, sz.h, m.rope);
    be.ropeBackward(g.dk, this.batch, this.seq, sz.kv, m.rope);
  }
}

/**
 * Keys and values of one sequence's earlier positions, per layer: float32 (the backend's float arrays) as
 * [layers, maxSeq, nKvHeads·headDim], or IEEE half (Uint16Arrays of the bits: an F16 cache, `--kv-cache f16`)
 * head-major as [layers, nKvHeads, maxSeq, headDim], so that one head's keys are read as one contiguous run.
 */
export interface KvRows {
  readonly k: FloatArray | Uint16Array;
  readonly v: FloatArray | Uint16Array;
  readonly maxSeq: number;
  /** Positions filled before this step. */
  length: number;
}

/**
 * Attention of new rows over KV caches (prefill and decode): the rows are `counts[i]` new tokens of sequence i,
 * at positions caches[i].length onwards. Their keys and values are appended to the caches; the caches' lengths
 * are advanced by the caller once every layer has run.
 */
export class CachedAttention implements AttentionSource {
  readonly rows: number;
  constructor(readonly caches: KvRows[], readonly counts: number[]) {
    this.rows = counts.reduce((a, b) => a + b, 0);
  }

  forward(m: Llama, l: number, s: BlockActs): void {
    const be = m.backend;
    const { hd, h, kv, qw, kw } = m.sz;
    let r0 = 0;
    this.caches.forEach((cache, i) => {
      const n = this.counts[i];
      const pos = cache.length;
      const qs = s.q.subarray(r0 * qw, (r0 + n) * qw);
      const ks = s.k.subarray(r0 * kw, (r0 + n) * kw);
      be.rope(qs, 1, n, h, m.rope, pos);
      be.rope(ks, 1, n, kv, m.rope, pos);
      const base = l * cache.maxSeq * kw;
      const kvEnd = base + (pos + n) * kw;
      const vs = s.v.subarray(r0 * kw, (r0 + n) * kw);
      const out = s.att.subarray(r0 * qw, (r0 + n) * qw);
      if (cache.k instanceof Uint16Array && cache.v instanceof Uint16Array) {
        // F16 cache (head-major per layer): the op rounds the new rows into it and attends over the widened rows
        const layer = l * cache.maxSeq * kw;
        const kc = cache.k.subarray(layer, layer + cache.maxSeq * kw), vc = cache.v.subarray(layer, layer + cache.maxSeq * kw);
        be.attentionCachedF16(out, qs, ks, vs, kc, vc, n, pos, h, kv, hd, cache.maxSeq);
      } else if (!(cache.k instanceof Uint16Array) && !(cache.v instanceof Uint16Array)) {
        cache.k.set(ks, base + pos * kw);
        cache.v.set(vs, base + pos * kw);
        be.attentionCached(out, qs, cache.k.subarray(base, kvEnd), cache.v.subarray(base, kvEnd), n, pos, h, kv, hd);
      } else {
        throw new TypeError('KV cache: k and v must both be float or both be half');
      }
      r0 += n;
    });
  }
}

// ------------------------------------------------------------------ vocabulary-parallel cross-entropy

/**
 * Softmax cross-entropy when each rank of `tp` holds the logits of vocabulary rows [v0, v0 + V) (Megatron-LM's
 * parallel cross-entropy): each rank's per-row log-sum-exp is gathered, so every rank knows the log-sum-exp over
 * the whole vocabulary, and the target's logit is summed from the rank that holds it. The full logits never exist
 * on one rank. Same contract as Backend.crossEntropy, over this rank's slice of dlogits; the row work runs in the
 * backend's logSumExp and softmaxScaled kernels.
 */
export function vocabParallelCrossEntropy(
  tp: Comm, be: Backend, logits: FloatArray, targets: Int32Array, rows: number, V: number, v0: number, vocab: number,
  dlogits: FloatArray | null, gradScale: number,
): number {
  const mine = be.alloc(rows);
  const all = be.alloc(rows * tp.world);
  const target = be.alloc(rows);
  be.logSumExp(mine, logits, rows, V);
  for (let r = 0; r < rows; r++) {
    const t = targets[r];
    if (t >= vocab) throw new RangeError(`crossEntropy: target ${t} at row ${r} is outside the vocabulary (${vocab})`);
    target[r] = t >= v0 && t < v0 + V ? logits[r * V + t - v0] : 0;
  }
  tp.allGather(mine, all);
  tp.allReduce(target);
  const lse = mine; // now the log-sum-exp over the whole vocabulary
  let total = 0;
  for (let r = 0; r < rows; r++) {
    let max = -Infinity;
    for (let k = 0; k < tp.world; k++) max = Math.max(max, all[k * rows + r]);
    let sum = 0;
    for (let k = 0; k < tp.world; k++) sum += Math.exp(all[k * rows + r] - max);
    lse[r] = max + Math.log(sum);
    if (targets[r] >= 0) total += lse[r] - target[r];
  }
  if (dlogits) {
    be.softmaxScaled(dlogits, logits, lse, rows, V, gradScale);
    for (let r = 0; r < rows; r++) {
      const t = targets[r];
      if (t < 0) dlogits.fill(0, r * V, (r + 1) * V);
      else if (t >= v0 && t < v0 + V) dlogits[r * V + t - v0] -= gradScale;
    }
  }
  return total;
}
