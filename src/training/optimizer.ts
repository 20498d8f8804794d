/**
 * AdamW over the model's flat buffers: moments share the parameter layout, weight decay applies to matrices only.
 * Global-norm gradient clipping works on the flat gradient buffer in one pass.
 */
import type { Backend } from '../kernels/backend.js';
import { FlatTensors, type ParamLayout, type TensorLayout } from '../model/params.js';
import { LOCAL_COMM, type Comm } from '../parallel/comm.js';

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export const ADAMW_DEFAULTS: AdamWOptions = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };

export class AdamW<L extends TensorLayout = ParamLayout> {
  readonly m: FlatTensors<L>;
  readonly v: FlatTensors<L>;
  /** Number of updates applied so far. */
  step = 0;

  constructor(readonly layout: L, readonly backend: Backend, readonly options: AdamWOptions = ADAMW_DEFAULTS) {
    this.m = new FlatTensors(layout, backend);
    this.v = new FlatTensors(layout, backend);
  }

  update(params: FlatTensors<L>, grads: FlatTensors<L>, lr: number): void {
    this.step++;
    for (const t of this.layout.tensors) {
      this.backend.adamw(params.view(t), grads.view(t), this.m.view(t), this.v.view(t), t.size, {
        lr,
        beta1: this.options.beta1,
        beta2: this.options.beta2,
        eps: this.options.eps,
        weightDecay: t.decay ? this.options.weightDecay : 0,
        step: this.step,
      });
    }
  }
}

/**
 * Global L2 norm of all gradients; scales them to maxNorm when above it (PyTorch clip_grad_norm_). Returns the norm
 * before clipping. Under tensor parallelism (`tp`) each rank holds a shard of the split tensors, whose squares are
 * summed over the group, and a whole copy of the replicated ones, counted once.
 */
export function clipGradNorm(grads: FlatTensors<TensorLayout>, backend: Backend, maxNorm: number, tp: Comm = LOCAL_COMM): number {
  const norm = Math.sqrt(tp.world === 1 ? backend.sumSquares(grads.data, grads.data.length) : shardedSumSquares(grads, backend, tp));
  const coef = clipCoefficient(norm, maxNorm);
  if (coef < 1) backend.scale(grads.data, coef, grads.data.length);
  return norm;
}

/** The factor that brings a gradient of norm `norm` down to maxNorm (1: leave it; PyTorch's norm + 1e-6 rule). */
export function clipCoefficient(norm: number, maxNorm: number): number {
  return maxNorm > 0 && Number.isFinite(norm) ? Math.min(1, maxNorm / (norm + 1e-6)) : 1;
}

function shardedSumSquares(grads: FlatTensors<TensorLayout>, backend: Backend, tp: Comm): number {
  const split = new Float64Array(1);
  let replicated = 0;
  for (const t of grads.layout.tensors) {
    const ss = backend.sumSquares(grads.view(t), t.size);
    if (t.split === 'replicated') replicated += ss;
    else split[0] += ss;
  }
  tp.allReduce(split);
  return split[0] + replicated;
}
