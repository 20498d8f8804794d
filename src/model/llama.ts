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
 */
import type { Backend, FloatArray, RopeTable } from '../kernels/backend.js';
import { makeRopeTable } from '../kernels/backend.js';
import { ffnHiddenDim, headDim, type LlamaConfig } from './config.js';
import { FlatTensors, paramLayout, initParams, type ParamLayout, type LayerSpecs } from './params.js';
import { Rng } from '../util/rng.js';

interface LayerActs {
  x: FloatArray; // residual stream entering the layer [N, D]
  rstd1: FloatArray;
  xn1: FloatArray; // attention_norm output [N, D]
  q: FloatArray; // after RoPE [N, H·hd]
  k: FloatArray; // after RoPE [N, KV·hd]
  v: FloatArray;
  att: FloatArray; // attention output before wo [N, H·hd]
  lse: FloatArray; // [B, H, T]
  xMid: FloatArray; // residual after attention [N, D]
  rstd2: FloatArray;
  xn2: FloatArray;
  h1: FloatArray; // x·W1ᵀ [N, F]
  h3: FloatArray; // x·W3ᵀ [N, F]
  gate: FloatArray; // silu(h1)·h3 [N, F]
}

interface Activations {
  batch: number;
  seq: number;
  tokens: Int32Array;
  layers: LayerActs[];
  xFinal: FloatArray; // residual stream after the last layer
  rstdF: FloatArray;
  xnF: FloatArray; // final norm output (input of the head)
  // scratch for the backward
  dx: FloatArray;
  dxn: FloatArray;
  dAtt: FloatArray;
  dq: FloatArray;
  dk: FloatArray;
  dv: FloatArray;
  dGate: FloatArray;
  dh1: FloatArray;
  dh3: FloatArray;
  logitsChunk: FloatArray;
}

/** Rows of logits computed at once in the head: bounded memory whatever the vocabulary. */
const HEAD_CHUNK_FLOATS = 1 << 23;

export class Llama {
  readonly layout: ParamLayout;
  readonly params: FlatTensors;
  grads: FlatTensors | null = null;
  readonly rope: RopeTable;
  /** Derived widths: D = dim, hd = head dim, qw/kw = query/key-value widths, F = SwiGLU hidden. */
  private readonly sz: { D: number; hd: number; qw: number; kw: number; F: number };
  private acts: Activations | null = null;

  constructor(readonly config: LlamaConfig, readonly backend: Backend) {
    const hd = headDim(config);
    this.sz = { D: config.dim, hd, qw: config.nHeads * hd, kw: config.nKvHeads * hd, F: ffnHiddenDim(config) };
    this.layout = paramLayout(config);
    this.params = new FlatTensors(this.layout, backend);
    this.rope = makeRopeTable(headDim(config), config.maxSeqLen, config.ropeTheta);
  }

  init(seed: number): void {
    initParams(this.params, this.config, new Rng(seed));
  }

  ensureGrads(): FlatTensors {
    if (!this.grads) this.grads = new FlatTensors(this.layout, this.backend);
    return this.grads;
  }

  private activations(batch: number, seq: number): Activations {
    if (this.acts && this.acts.batch === batch && this.acts.seq === seq) return this.acts;
    this.acts = null; // let the old buffers go before allocating new ones
    const c = this.config;
    const be = this.backend;
    const N = batch * seq;
    const { qw, kw, F } = this.sz;
    const layers: LayerActs[] = [];
    for (let l = 0; l < c.nLayers; l++) {
      layers.push({
        x: be.alloc(N * c.dim), rstd1: be.alloc(N), xn1: be.alloc(N * c.dim),
        q: be.alloc(N * qw), k: be.alloc(N * kw), v: be.alloc(N * kw), att: be.alloc(N * qw), lse: be.alloc(batch * c.nHeads * seq),
        xMid: be.alloc(N * c.dim), rstd2: be.alloc(N), xn2: be.alloc(N * c.dim),
        h1: be.alloc(N * F), h3: be.alloc(N * F), gate: be.alloc(N * F),
      });
    }
    const chunkRows = Math.max(1, Math.min(N, Math.floor(HEAD_CHUNK_FLOATS / c.vocabSize)));
    this.acts = {
      batch, seq, tokens: new Int32Array(N), layers,
      xFinal: be.alloc(N * c.dim), rstdF: be.alloc(N), xnF: be.alloc(N * c.dim),
      dx: be.alloc(N * c.dim), dxn: be.alloc(N * c.dim), dAtt: be.alloc(N * qw),
      dq: be.alloc(N * qw), dk: be.alloc(N * kw), dv: be.alloc(N * kw),
      dGate: be.alloc(N * F), dh1: be.alloc(N * F), dh3: be.alloc(N * F),
      logitsChunk: be.alloc(chunkRows * c.vocabSize),
    };
    return this.acts;
  }

  // ---------------------------------------------------------------- forward

  /** Runs the transformer over tokens[B·T] up to the final norm, keeping what the backward needs. */
  forward(tokens: Int32Array, batch: number, seq: number): void {
    const c = this.config;
    if (tokens.length !== batch * seq) throw new RangeError(`forward: ${tokens.length} tokens for batch ${batch} × seq ${seq}`);
    if (seq > c.maxSeqLen) throw new RangeError(`forward: sequence length ${seq} exceeds maxSeqLen ${c.maxSeqLen}`);
    const a = this.activations(batch, seq);
    a.tokens.set(tokens);
    const be = this.backend;
    const N = batch * seq;
    be.embedding(a.layers.length ? a.layers[0].x : a.xFinal, this.params.view(this.layout.tokEmbeddings), a.tokens, c.dim);
    for (let l = 0; l < c.nLayers; l++) {
      const out = l + 1 < c.nLayers ? a.layers[l + 1].x : a.xFinal;
      this.layerForward(this.layout.layers[l], a.layers[l], out, batch, seq);
    }
    be.rmsnorm(a.xnF, a.rstdF, a.xFinal, this.params.view(this.layout.norm), N, c.dim, c.normEps);
  }

  private layerForward(w: LayerSpecs, s: LayerActs, out: FloatArray, batch: number, seq: number): void {
    const c = this.config;
    const be = this.backend;
    const p = this.params;
    const N = batch * seq;
    const { D, hd, qw, kw, F } = this.sz;
    // attention block
    be.rmsnorm(s.xn1, s.rstd1, s.x, p.view(w.attentionNorm), N, D, c.normEps);
    be.matmul(s.q, s.xn1, p.view(w.wq), N, D, qw);
    be.matmul(s.k, s.xn1, p.view(w.wk), N, D, kw);
    be.matmul(s.v, s.xn1, p.view(w.wv), N, D, kw);
    be.rope(s.q, batch, seq, c.nHeads, this.rope);
    be.rope(s.k, batch, seq, c.nKvHeads, this.rope);
    be.attention(s.att, s.lse, s.q, s.k, s.v, { batch, seq, nHeads: c.nHeads, nKvHeads: c.nKvHeads, headDim: hd });
    s.xMid.set(s.x.subarray(0, N * D));
    be.matmul(s.xMid, s.att, p.view(w.wo), N, qw, D, true);
    // feed-forward block
    be.rmsnorm(s.xn2, s.rstd2, s.xMid, p.view(w.ffnNorm), N, D, c.normEps);
    be.matmul(s.h1, s.xn2, p.view(w.w1), N, D, F);
    be.matmul(s.h3, s.xn2, p.view(w.w3), N, D, F);
    be.swiglu(s.gate, s.h1, s.h3, N * F);
    out.set(s.xMid.subarray(0, N * D));
    be.matmul(out, s.gate, p.view(w.w2), N, F, D, true);
  }

  // ---------------------------------------------------------------- head + loss

  /**
   * Output head and softmax cross-entropy over the last forward's tokens. Returns the summed loss over targets >= 0.
   * With gradScale !== null it also runs the head's backward: dWout += dlogitsᵀ·xn, and d(xn) into the scratch
   * buffer the rest of the backward starts from. Targets < 0 are ignored.
   */
  loss(targets: Int32Array, gradScale: number | null): number {
    const a = this.requireActs('loss');
    const c = this.config;
    const be = this.backend;
    const N = a.batch * a.seq;
    if (targets.length !== N) throw new RangeError(`loss: ${targets.length} targets for ${N} positions`);
    const V = c.vocabSize;
    const D = c.dim;
    const wOut = this.params.view(this.layout.output);
    const chunk = a.logitsChunk.length / V;
    const dWout = gradScale !== null ? this.ensureGrads().view(this.layout.output) : null;
    let total = 0;
    for (let r0 = 0; r0 < N; r0 += chunk) {
      const rows = Math.min(chunk, N - r0);
      const xn = a.xnF.subarray(r0 * D, (r0 + rows) * D);
      const logits = a.logitsChunk.subarray(0, rows * V);
      be.matmul(logits, xn, wOut, rows, D, V);
      const t = targets.subarray(r0, r0 + rows);
      if (dWout) {
        total += be.crossEntropy(logits, t, rows, V, logits, gradScale as number);
        be.matmulBackwardWeight(dWout, logits, xn, rows, D, V);
        be.matmulBackwardInput(a.dxn.subarray(r0 * D, (r0 + rows) * D), logits, wOut, rows, D, V);
      } else {
        total += be.crossEntropy(logits, t, rows, V, null, 0);
      }
    }
    return total;
  }

  /** Logits for the given positions of the last forward (all positions when omitted): [positions, vocab]. */
  logits(positions?: number[]): FloatArray {
    const a = this.requireActs('logits');
    const c = this.config;
    const rows = positions ?? Array.from({ length: a.batch * a.seq }, (_, i) => i);
    const out = this.backend.alloc(rows.length * c.vocabSize);
    const wOut = this.params.view(this.layout.output);
    rows.forEach((r, i) => {
      this.backend.matmul(out.subarray(i * c.vocabSize, (i + 1) * c.vocabSize), a.xnF.subarray(r * c.dim, (r + 1) * c.dim), wOut, 1, c.dim, c.vocabSize);
    });
    return out;
  }

  // ---------------------------------------------------------------- backward

  /** Backward through the layers after `loss(targets, scale)`; accumulates into this.grads. */
  backward(): void {
    const a = this.requireActs('backward');
    const g = this.ensureGrads();
    const c = this.config;
    const be = this.backend;
    const N = a.batch * a.seq;
    a.dx.fill(0);
    be.rmsnormBackward(a.dx, g.view(this.layout.norm), a.dxn, a.xFinal, this.params.view(this.layout.norm), a.rstdF, N, c.dim);
    for (let l = c.nLayers - 1; l >= 0; l--) this.layerBackward(this.layout.layers[l], a.layers[l], a, g);
    be.embeddingBackward(g.view(this.layout.tokEmbeddings), a.dx, a.tokens, c.dim);
  }

  /** a.dx holds ∂L/∂(layer output) on entry and ∂L/∂(layer input) on exit. */
  private layerBackward(w: LayerSpecs, s: LayerActs, a: Activations, g: FlatTensors): void {
    const c = this.config;
    const be = this.backend;
    const p = this.params;
    const { batch, seq } = a;
    const N = batch * seq;
    const { D, hd, qw, kw, F } = this.sz;
    // feed-forward block: out = xMid + gate·W2ᵀ
    be.matmulBackwardWeight(g.view(w.w2), a.dx, s.gate, N, F, D);
    be.matmulBackwardInput(a.dGate, a.dx, p.view(w.w2), N, F, D);
    be.swigluBackward(a.dh1, a.dh3, a.dGate, s.h1, s.h3, N * F);
    be.matmulBackwardWeight(g.view(w.w1), a.dh1, s.xn2, N, D, F);
    be.matmulBackwardWeight(g.view(w.w3), a.dh3, s.xn2, N, D, F);
    be.matmulBackwardInput(a.dxn, a.dh1, p.view(w.w1), N, D, F);
    be.matmulBackwardInput(a.dxn, a.dh3, p.view(w.w3), N, D, F, true);
    be.rmsnormBackward(a.dx, g.view(w.ffnNorm), a.dxn, s.xMid, p.view(w.ffnNorm), s.rstd2, N, D);
    // attention block: xMid = x + att·Woᵀ
    be.matmulBackwardWeight(g.view(w.wo), a.dx, s.att, N, qw, D);
    be.matmulBackwardInput(a.dAtt, a.dx, p.view(w.wo), N, qw, D);
    be.attentionBackward(a.dq, a.dk, a.dv, a.dAtt, s.q, s.k, s.v, s.att, s.lse, { batch, seq, nHeads: c.nHeads, nKvHeads: c.nKvHeads, headDim: hd });
    be.ropeBackward(a.dq, batch, seq, c.nHeads, this.rope);
    be.ropeBackward(a.dk, batch, seq, c.nKvHeads, this.rope);
    be.matmulBackwardWeight(g.view(w.wq), a.dq, s.xn1, N, D, qw);
    be.matmulBackwardWeight(g.view(w.wk), a.dk, s.xn1, N, D, kw);
    be.matmulBackwardWeight(g.view(w.wv), a.dv, s.xn1, N, D, kw);
    be.matmulBackwardInput(a.dxn, a.dq, p.view(w.wq), N, D, qw);
    be.matmulBackwardInput(a.dxn, a.dk, p.view(w.wk), N, D, kw, true);
    be.matmulBackwardInput(a.dxn, a.dv, p.view(w.wv), N, D, kw, true);
    be.rmsnormBackward(a.dx, g.view(w.attentionNorm), a.dxn, s.x, p.view(w.attentionNorm), s.rstd1, N, D);
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
