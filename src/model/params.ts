/**
 * Parameters in one contiguous buffer with named views (llm.c's ParameterTensors). Gradients and the two AdamW
 * moments use the same layout, so one call can zero, clip, update, all-reduce or save all of them.
 * Names are Meta's checkpoint names (llama/model.py state_dict).
 *
 * Every tensor declares how tensor parallelism splits it (Megatron-LM, Shoeybi et al. 2019; torchtitan's sharding
 * plan, written once here instead of inside the layers):
 * - 'column' (wq, wk, wv, w1, w3): the output rows [out, in] are divided, so each rank computes whole heads and a
 *   slice of the SwiGLU hidden units from the full input;
 * - 'row' (wo, w2): the input columns are divided, matching the column split before them; the partial outputs are
 *   summed across the group (an all-reduce);
 * - 'vocab' (tok_embeddings, output): the vocabulary rows are divided (vocabulary-parallel embedding and head);
 * - 'replicated' (the RMSNorm gains): every rank holds all of it.
 * `paramLayout(config, { size, rank })` lays out only one rank's shards; with one rank (the default) every shard is
 * the whole tensor and nothing changes. `shardOf` / `placeShard` move a tensor between its full and its sharded
 * form by name, which is what checkpoints independent of the layout need.
 */
import type { Backend, FloatArray } from '../kernels/backend.js';
import { ffnHiddenDim, headDim, type LlamaConfig } from './config.js';
import type { Rng } from '../util/rng.js';
import { UserError } from '../util/errors.js';

/** How tensor parallelism divides a tensor; see the header. */
export type Split = 'column' | 'row' | 'vocab' | 'replicated';

/** The tensor-parallel group a layout is cut for: `size` ranks, this one is `rank`. */
export interface TpShard {
  size: number;
  rank: number;
}

export const NO_SHARD: TpShard = { size: 1, rank: 0 };

export interface TensorSpec {
  name: string;
  /** The shape this rank holds (the full shape when the group has one rank). */
  shape: number[];
  /** The shape of the whole tensor (what checkpoints store). */
  fullShape: number[];
  split: Split;
  offset: number;
  size: number;
  /** 2-D weights get weight decay; 1-D norm gains do not. */
  decay: boolean;
  /** Residual output projections (wo, w2) get the scaled-down init of GPT-2/nanoGPT. */
  residualProjection: boolean;
}

export interface LayerSpecs {
  attentionNorm: TensorSpec;
  wq: TensorSpec;
  wk: TensorSpec;
  wv: TensorSpec;
  wo: TensorSpec;
  ffnNorm: TensorSpec;
  w1: TensorSpec;
  w2: TensorSpec;
  w3: TensorSpec;
}

export interface ParamLayout {
  tp: TpShard;
  tensors: TensorSpec[];
  byName: Map<string, TensorSpec>;
  tokEmbeddings: TensorSpec;
  layers: LayerSpecs[];
  norm: TensorSpec;
  output: TensorSpec;
  total: number;
}

/** The dimension a split divides: rows (0) for column and vocabulary splits, columns (1) for row splits. */
export function splitDim(split: Split): 0 | 1 | null {
  return split === 'row' ? 1 : split === 'replicated' ? null : 0;
}

/** Checks that a tensor-parallel group of `size` ranks divides every split dimension of the model. */
export function checkTpShard(c: LlamaConfig, tp: TpShard): void {
  if (!Number.isInteger(tp.size) || tp.size < 1 || !Number.isInteger(tp.rank) || tp.rank < 0 || tp.rank >= tp.size) {
    throw new RangeError(`tensor-parallel rank ${tp.rank} of ${tp.size}`);
  }
  const parts: [string, number][] = [['attention heads', c.nHeads], ['key/value heads', c.nKvHeads], ['SwiGLU hidden units', ffnHiddenDim(c)], ['vocabulary entries', c.vocabSize]];
  for (const [what, n] of parts) {
    if (n % tp.size !== 0) throw new UserError(`tensor parallelism over ${tp.size} ranks needs the ${n} ${what} to divide by ${tp.size}${what === 'vocabulary entries' ? ' (--vocab can pad the vocabulary to a multiple)' : ''}`);
  }
}

export function paramLayout(c: LlamaConfig, tp: TpShard = NO_SHARD): ParamLayout {
  checkTpShard(c, tp);
  const tensors: TensorSpec[] = [];
  let offset = 0;
  const add = (name: string, fullShape: number[], split: Split, residualProjection = false): TensorSpec => {
    const d = splitDim(split);
    const shape = fullShape.map((n, i) => (i === d ? n / tp.size : n));
    const size = shape.reduce((a, b) => a * b, 1);
    const t: TensorSpec = { name, shape, fullShape, split, offset, size, decay: shape.length >= 2, residualProjection };
    offset += size;
    tensors.push(t);
    return t;
  };
  const hd = headDim(c);
  const hidden = ffnHiddenDim(c);
  const tokEmbeddings = add('tok_embeddings.weight', [c.vocabSize, c.dim], 'vocab');
  const layers: LayerSpecs[] = [];
  for (let l = 0; l < c.nLayers; l++) {
    const p = `layers.${l}.`;
    layers.push({
      attentionNorm: add(p + 'attention_norm.weight', [c.dim], 'replicated'),
      wq: add(p + 'attention.wq.weight', [c.nHeads * hd, c.dim], 'column'),
      wk: add(p + 'attention.wk.weight', [c.nKvHeads * hd, c.dim], 'column'),
      wv: add(p + 'attention.wv.weight', [c.nKvHeads * hd, c.dim], 'column'),
      wo: add(p + 'attention.wo.weight', [c.dim, c.nHeads * hd], 'row', true),
      ffnNorm: add(p + 'ffn_norm.weight', [c.dim], 'replicated'),
      w1: add(p + 'feed_forward.w1.weight', [hidden, c.dim], 'column'),
      w2: add(p + 'feed_forward.w2.weight', [c.dim, hidden], 'row', true),
      w3: add(p + 'feed_forward.w3.weight', [hidden, c.dim], 'column'),
    });
  }
  const norm = add('norm.weight', [c.dim], 'replicated');
  const output = add('output.weight', [c.vocabSize, c.dim], 'vocab');
  return { tp, tensors, byName: new Map(tensors.map((t) => [t.name, t])), tokEmbeddings, layers, norm, output, total: offset };
}

/**
 * Visits the contiguous runs that make up rank `rank`'s shard of a tensor: fn(fullOffset, shardOffset, length).
 * A split along rows is one run; a split along columns is one run per row.
 */
function shardRuns(t: TensorSpec, size: number, rank: number, fn: (full: number, shard: number, n: number) => void): void {
  const d = splitDim(t.split);
  const full = t.fullShape.reduce((a, b) => a * b, 1);
  if (d === null || size === 1) return fn(0, 0, full);
  const [rows, cols] = t.fullShape;
  if (d === 0) {
    const n = (rows / size) * cols;
    return fn(rank * n, 0, n);
  }
  const w = cols / size;
  for (let r = 0; r < rows; r++) fn(r * cols + rank * w, r * w, w);
}

/** Copies rank tp.rank's shard of the whole tensor `full` (laid out as t.fullShape) into `out` (t.shape). */
export function shardOf(t: TensorSpec, full: ArrayLike<number>, out: FloatArray, tp: TpShard): void {
  shardRuns(t, tp.size, tp.rank, (f, s, n) => {
    for (let i = 0; i < n; i++) out[s + i] = full[f + i];
  });
}

/** Writes rank tp.rank's shard `shard` (t.shape) into its place in the whole tensor `full` (t.fullShape). */
export function placeShard(t: TensorSpec, shard: ArrayLike<number>, full: FloatArray, tp: TpShard): void {
  shardRuns(t, tp.size, tp.rank, (f, s, n) => {
    for (let i = 0; i < n; i++) full[f + i] = shard[s + i];
  });
}

/**
 * A flat buffer plus the layout, with a typed view per tensor. `FlatTensors.external` is the other form: a view per
 * tensor from elsewhere (weights mapped from a model file, util/mmap.ts) and no flat buffer, for inference only —
 * `data` throws, so the whole-buffer operations of training (zeroing, clipping, AdamW, all-reduce, saving the flat
 * optimizer state) cannot run on it by mistake; `writable` is false.
 */
export class FlatTensors {
  private readonly flat: FloatArray | null;
  private readonly views: Map<string, FloatArray> | null;
  /** Called by the decoder between steps: throws when the external views went bad (the mapped file changed). */
  readonly check: () => void;
  constructor(readonly layout: ParamLayout, backend: Backend | null, views?: Map<string, FloatArray>, check?: () => void) {
    this.flat = backend ? backend.alloc(layout.total) : null;
    this.views = views ?? null;
    this.check = check ?? (() => {});
  }
  /** Per-tensor views (every tensor of the layout, each exactly its size), read-only: see the class comment. */
  static external(layout: ParamLayout, views: Map<string, FloatArray>, check?: () => void): FlatTensors {
    for (const t of layout.tensors) {
      const v = views.get(t.name);
      if (!v || v.length !== t.size) throw new Error(`external weights: tensor '${t.name}' has ${v ? v.length : 'no'} values, the layout needs ${t.size}`);
    }
    return new FlatTensors(layout, null, views, check);
  }
  /** False for external (mapped, read-only) weights. */
  get writable(): boolean {
    return this.flat !== null;
  }
  get data(): FloatArray {
    if (!this.flat) throw new Error('these weights are views of a mapped model file (inference only): there is no flat buffer to train or update; load the model with weights: "copy"');
    return this.flat;
  }
  view(t: TensorSpec): FloatArray {
    if (this.views) return this.views.get(t.name) as FloatArray;
    return (this.flat as FloatArray).subarray(t.offset, t.offset + t.size);
  }
  get(name: string): FloatArray {
    const t = this.layout.byName.get(name);
    if (!t) throw new Error(`no tensor named ${name}`);
    return this.view(t);
  }
}

/**
 * Initialisation as in common LLaMA training code (nanoGPT / llama2.c): every matrix N(0, 0.02²), the residual
 * output projections N(0, (0.02/√(2·layers))²), norm gains 1.
 */
export function initParams(p: FlatTensors, c: LlamaConfig, rng: Rng, std = 0.02): void {
  for (const t of p.layout.tensors) initTensor(t, p.view(t), c, rng, std);
}

/** One tensor's initial values (all of it: `out` has the full shape), drawn from `rng` in layout order. */
export function initTensor(t: TensorSpec, out: FloatArray, c: LlamaConfig, rng: Rng, std = 0.02): void {
  if (!t.decay) {
    out.fill(1);
    return;
  }
  const s = t.residualProjection ? std / Math.sqrt(2 * c.nLayers) : std;
  for (let i = 0; i < out.length; i++) out[i] = rng.normal() * s;
}
