/**
 * Parameters in one contiguous buffer with named views (llm.c's ParameterTensors). Gradients and the two AdamW
 * moments use the same layout, so one call can zero, clip, update, all-reduce or save all of them.
 * Names are Meta's checkpoint names (llama/model.py state_dict).
 */
import type { Backend, FloatArray } from '../kernels/backend.js';
import { ffnHiddenDim, headDim, type LlamaConfig } from './config.js';
import type { Rng } from '../util/rng.js';

export interface TensorSpec {
  name: string;
  shape: number[];
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
  tensors: TensorSpec[];
  byName: Map<string, TensorSpec>;
  tokEmbeddings: TensorSpec;
  layers: LayerSpecs[];
  norm: TensorSpec;
  output: TensorSpec;
  total: number;
}

export function paramLayout(c: LlamaConfig): ParamLayout {
  const tensors: TensorSpec[] = [];
  let offset = 0;
  const add = (name: string, shape: number[], residualProjection = false): TensorSpec => {
    const size = shape.reduce((a, b) => a * b, 1);
    const t: TensorSpec = { name, shape, offset, size, decay: shape.length >= 2, residualProjection };
    offset += size;
    tensors.push(t);
    return t;
  };
  const hd = headDim(c);
  const hidden = ffnHiddenDim(c);
  const tokEmbeddings = add('tok_embeddings.weight', [c.vocabSize, c.dim]);
  const layers: LayerSpecs[] = [];
  for (let l = 0; l < c.nLayers; l++) {
    const p = `layers.${l}.`;
    layers.push({
      attentionNorm: add(p + 'attention_norm.weight', [c.dim]),
      wq: add(p + 'attention.wq.weight', [c.nHeads * hd, c.dim]),
      wk: add(p + 'attention.wk.weight', [c.nKvHeads * hd, c.dim]),
      wv: add(p + 'attention.wv.weight', [c.nKvHeads * hd, c.dim]),
      wo: add(p + 'attention.wo.weight', [c.dim, c.nHeads * hd], true),
      ffnNorm: add(p + 'ffn_norm.weight', [c.dim]),
      w1: add(p + 'feed_forward.w1.weight', [hidden, c.dim]),
      w2: add(p + 'feed_forward.w2.weight', [c.dim, hidden], true),
      w3: add(p + 'feed_forward.w3.weight', [hidden, c.dim]),
    });
  }
  const norm = add('norm.weight', [c.dim]);
  const output = add('output.weight', [c.vocabSize, c.dim]);
  return { tensors, byName: new Map(tensors.map((t) => [t.name, t])), tokEmbeddings, layers, norm, output, total: offset };
}

/** A flat buffer plus the layout, with a typed view per tensor. */
export class FlatTensors {
  readonly data: FloatArray;
  constructor(readonly layout: ParamLayout, backend: Backend) {
    this.data = backend.alloc(layout.total);
  }
  view(t: TensorSpec): FloatArray {
    return this.data.subarray(t.offset, t.offset + t.size);
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
  for (const t of p.layout.tensors) {
    const v = p.view(t);
    if (!t.decay) {
      v.fill(1);
      continue;
    }
    const s = t.residualProjection ? std / Math.sqrt(2 * c.nLayers) : std;
    for (let i = 0; i < v.length; i++) v[i] = rng.normal() * s;
  }
}
