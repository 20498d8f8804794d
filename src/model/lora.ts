/**
 * LoRA (Hu et al. 2021): low-rank updates of the block's projections, trained with the base weights frozen.
 *
 *   y = x·Wᵀ + (α/r)·(x·Aᵀ)·Bᵀ        A [r, in], B [out, r];  ΔW = (α/r)·B·A
 *
 * A starts uniform in ±1/√in (PEFT's kaiming_uniform(a=√5)), B at zero, so a fresh adapter leaves the model's output
 * exactly as it was. The adapter's tensors live in their own flat buffer (a TensorLayout, so AdamW, clipping and
 * checkpoints work on it as on the model's) and reach the model through Llama's ProjectionAdapter hook: `forward`
 * right after each adapted projection, `backward` right after the projection's input gradient. The forward keeps
 * s·x·Aᵀ per layer and projection (N×r floats) for the backward:
 *
 *   dB += dyᵀ·(s·x·Aᵀ)      du = s·dy·B      dA += duᵀ·x      dx += du·A
 *
 * Tensor names follow Meta's: layers.{l}.attention.wq.lora_A.weight; io/lora.ts maps them to PEFT's.
 */
import type { Backend, FloatArray } from '../kernels/backend.js';
import { ffnHiddenDim, headDim, type LlamaConfig } from './config.js';
import { FlatTensors, NO_SHARD, type TensorLayout, type TensorSpec } from './params.js';
import { PROJECTIONS, type Llama, type Projection, type ProjectionAdapter } from './llama.js';
import { Rng } from '../util/rng.js';
import { UserError } from '../util/errors.js';

export interface LoraConfig {
  rank: number;
  alpha: number;
  targets: Projection[];
}

/** The projections PEFT adapts in LLaMA by default (and the LoRA paper's choice): query and value. */
export const DEFAULT_LORA_TARGETS: readonly Projection[] = ['wq', 'wv'];

/** Hugging Face module names of the projections (what PEFT's target_modules list). */
export const HF_PROJECTION: Record<Projection, string> = {
  wq: 'self_attn.q_proj', wk: 'self_attn.k_proj', wv: 'self_attn.v_proj', wo: 'self_attn.o_proj',
  w1: 'mlp.gate_proj', w2: 'mlp.down_proj', w3: 'mlp.up_proj',
};

const MODULE_PATH: Record<Projection, string> = {
  wq: 'attention.wq', wk: 'attention.wk', wv: 'attention.wv', wo: 'attention.wo', w1: 'feed_forward.w1', w2: 'feed_forward.w2', w3: 'feed_forward.w3',
};

/** '--lora-targets' text (Meta names wq…w3, their HF names q_proj…down_proj, or 'all') → the projections, in table order. */
export function parseLoraTargets(text: string, what = '--lora-targets'): Projection[] {
  const hf = new Map(PROJECTIONS.map((p) => [HF_PROJECTION[p].split('.')[1], p]));
  const names = text.split(',').map((t) => t.trim()).filter(Boolean);
  if (names.length === 0) throw new UserError(`${what} is empty: give a comma-separated list of ${PROJECTIONS.join(', ')} (or all)`);
  const out = new Set<Projection>();
  for (const n of names) {
    if (n === 'all') PROJECTIONS.forEach((p) => out.add(p));
    else if ((PROJECTIONS as readonly string[]).includes(n)) out.add(n as Projection);
    else if (hf.has(n)) out.add(hf.get(n) as Projection);
    else throw new UserError(`${what}: unknown LoRA target '${n}' (known: ${PROJECTIONS.join(', ')}, their Hugging Face names ${[...hf.keys()].join(', ')}, or all)`);
  }
  return PROJECTIONS.filter((p) => out.has(p));
}

/** Checks rank and alpha: one line naming the flag. */
export function checkLoraConfig(l: LoraConfig, what = '--lora'): void {
  if (!Number.isInteger(l.rank) || l.rank <= 0) throw new UserError(`${what} rank must be a positive integer, got ${l.rank}`);
  if (!(l.alpha > 0) || !Number.isFinite(l.alpha)) throw new UserError(`${what} alpha must be > 0, got ${l.alpha}`);
  if (l.targets.length === 0) throw new UserError(`${what}: no target projections`);
}

/** [out, in] of a projection of this config. */
export function projectionShape(c: LlamaConfig, p: Projection): [number, number] {
  const q = c.nHeads * headDim(c);
  const kv = c.nKvHeads * headDim(c);
  const F = ffnHiddenDim(c);
  const shapes: Record<Projection, [number, number]> = { wq: [q, c.dim], wk: [kv, c.dim], wv: [kv, c.dim], wo: [c.dim, q], w1: [F, c.dim], w2: [c.dim, F], w3: [F, c.dim] };
  return shapes[p];
}

export interface LoraPair {
  layer: number;
  target: Projection;
  a: TensorSpec; // [r, in]
  b: TensorSpec; // [out, r]
  inDim: number;
  outDim: number;
}

export interface LoraLayout extends TensorLayout {
  lora: LoraConfig;
  /** pairs[l][target] */
  pairs: Map<Projection, LoraPair>[];
}

/** The adapter's tensors in one flat buffer: per layer, per target in table order, A then B. */
export function loraLayout(c: LlamaConfig, lora: LoraConfig): LoraLayout {
  checkLoraConfig(lora);
  const tensors: TensorSpec[] = [];
  let offset = 0;
  const add = (name: string, shape: number[]): TensorSpec => {
    const size = shape[0] * shape[1];
    const t: TensorSpec = { name, shape, fullShape: shape, split: 'replicated', offset, size, decay: true, residualProjection: false };
    offset += size;
    tensors.push(t);
    return t;
  };
  const pairs: Map<Projection, LoraPair>[] = [];
  for (let l = 0; l < c.nLayers; l++) {
    const m = new Map<Projection, LoraPair>();
    for (const target of lora.targets) {
      const [outDim, inDim] = projectionShape(c, target);
      const base = `layers.${l}.${MODULE_PATH[target]}`;
      const a = add(`${base}.lora_A.weight`, [lora.rank, inDim]);
      const b = add(`${base}.lora_B.weight`, [outDim, lora.rank]);
      m.set(target, { layer: l, target, a, b, inDim, outDim });
    }
    pairs.push(m);
  }
  return { tp: NO_SHARD, tensors, byName: new Map(tensors.map((t) => [t.name, t])), total: offset, lora, pairs };
}

/** The scale of ΔW: α/r. */
export function loraScale(l: LoraConfig): number {
  return l.alpha / l.rank;
}

/** A LoRA adapter over one model's projections: its weights, gradients, and the hook Llama calls. */
export class LoraAdapter implements ProjectionAdapter {
  readonly layout: LoraLayout;
  readonly params: FlatTensors<LoraLayout>;
  grads: FlatTensors<LoraLayout> | null = null;
  readonly scale: number;
  /** s·x·Aᵀ of the last forward, per layer and target [N, r] (grown as needed; decoding passes fewer rows). */
  private readonly saved: Map<Projection, FloatArray>[];
  private du: FloatArray;

  constructor(readonly config: LlamaConfig, readonly lora: LoraConfig, readonly backend: Backend) {
    this.layout = loraLayout(config, lora);
    this.params = new FlatTensors(this.layout, backend);
    this.scale = loraScale(lora);
    this.saved = this.layout.pairs.map(() => new Map());
    this.du = backend.alloc(0);
  }

  /** A uniform in ±1/√in from the seed, B = 0 (the model's output is unchanged until B moves). */
  init(seed: number): void {
    const rng = new Rng(seed);
    for (const m of this.layout.pairs) {
      for (const p of m.values()) {
        const a = this.params.view(p.a);
        const bound = 1 / Math.sqrt(p.inDim);
        for (let i = 0; i < a.length; i++) a[i] = (2 * rng.next() - 1) * bound;
        this.params.view(p.b).fill(0);
      }
    }
  }

  ensureGrads(): FlatTensors<LoraLayout> {
    if (!this.grads) this.grads = new FlatTensors(this.layout, this.backend);
    return this.grads;
  }

  /** Hooks the adapter into `model` (which must have this adapter's config) and freezes its base weights. */
  attach(model: Llama): void {
    if (JSON.stringify(model.config) !== JSON.stringify(this.config)) throw new UserError(`the LoRA adapter was made for another model config than ${JSON.stringify(model.config)}`);
    if (model.tp.world > 1) throw new UserError('LoRA runs without tensor parallelism (--tp 1)');
    if (model.dtype !== 'f32') throw new UserError('LoRA runs in float32 for now (no --dtype bf16)');
    model.adapter = this;
    model.trainBase = false;
  }

  private buffer(l: number, p: Projection, rows: number): FloatArray {
    const m = this.saved[l];
    const need = rows * this.lora.rank;
    let b = m.get(p);
    if (!b || b.length < need) {
      b = this.backend.alloc(need);
      m.set(p, b);
    }
    return b.subarray(0, need);
  }

  forward(l: number, target: Projection, y: FloatArray, x: FloatArray, N: number): void {
    const p = this.layout.pairs[l].get(target);
    if (!p) return;
    const be = this.backend;
    const r = this.lora.rank;
    const u = this.buffer(l, target, N);
    be.matmul(u, x, this.params.view(p.a), N, p.inDim, r);
    be.scale(u, this.scale, N * r);
    be.matmul(y, u, this.params.view(p.b), N, r, p.outDim, true);
  }

  backward(l: number, target: Projection, dy: FloatArray, x: FloatArray, dx: FloatArray, N: number): void {
    const p = this.layout.pairs[l].get(target);
    if (!p) return;
    const be = this.backend;
    const g = this.ensureGrads();
    const r = this.lora.rank;
    const u = this.buffer(l, target, N);
    if (this.du.length < N * r) this.du = be.alloc(N * r);
    const du = this.du.subarray(0, N * r);
    be.matmulBackwardWeight(g.view(p.b), dy, u, N, r, p.outDim);
    be.matmulBackwardInput(du, dy, this.params.view(p.b), N, r, p.outDim);
    be.scale(du, this.scale, N * r);
    be.matmulBackwardWeight(g.view(p.a), du, x, N, p.inDim, r);
    be.matmulBackwardInput(dx, du, this.params.view(p.a), N, p.inDim, r, true);
  }

  /** ΔW = s·B·A of one projection, [out, in], summed in float64. */
  delta(l: number, target: Projection): Float64Array {
    const p = this.layout.pairs[l].get(target);
    if (!p) throw new Error(`layer ${l} has no adapter on ${target}`);
    const r = this.lora.rank;
    const A = this.params.view(p.a);
    const B = this.params.view(p.b);
    const out = new Float64Array(p.outDim * p.inDim);
    for (let o = 0; o < p.outDim; o++) {
      for (let k = 0; k < r; k++) {
        const bk = this.scale * B[o * r + k];
        if (bk === 0) continue;
        const row = o * p.inDim;
        const arow = k * p.inDim;
        for (let i = 0; i < p.inDim; i++) out[row + i] += bk * A[arow + i];
      }
    }
    return out;
  }

  /** W ← W + s·B·A for every adapted projection of `model` (its weights change; detach the adapter afterwards). */
  mergeInto(model: Llama): void {
    if (model.tp.world > 1) throw new UserError('merging a LoRA adapter needs the whole model (no tensor parallelism)');
    for (let l = 0; l < this.layout.pairs.length; l++) {
      const specs = model.layout.layers[l];
      for (const target of this.layout.pairs[l].keys()) {
        const w = model.params.view(specs[target]);
        const d = this.delta(l, target);
        for (let i = 0; i < w.length; i++) w[i] += d[i];
      }
    }
    if (model.adapter === this) {
      model.adapter = null;
      model.trainBase = true;
    }
  }
}
