/**
 * ZeRO stage 1 (Rajbhandari et al. 2020; llm.c's `zero_stage 1`): the AdamW moments are divided across the
 * data-parallel ranks. The flat gradient buffer (padded to a multiple of the DP width) is reduce-scattered, so each
 * rank receives the summed gradients of its slice [lo, hi) only; each rank clips and updates its slice of the
 * parameters with its slice of the moments, and an all-gather brings every rank the whole updated parameters.
 * Per element this is the same AdamW as the unsharded one (test/distributed.test.ts checks the losses agree).
 * The moments take 2·P/dp floats per rank instead of 2·P. Under tensor parallelism the flat buffer is the rank's TP
 * shard and the ZeRO slices divide that.
 */
import type { Backend, FloatArray } from '../kernels/backend.js';
import { FlatTensors, type ParamLayout } from '../model/params.js';
import type { Comm } from '../parallel/comm.js';
import type { AdamWOptions } from './optimizer.js';

export class ZeroAdamW {
  /** Updates applied so far (as AdamW.step). */
  step = 0;
  /** This rank's slice of the flat buffer, and the padded slice length. */
  readonly lo: number;
  readonly hi: number;
  readonly slice: number;
  /** This rank's moments: [hi - lo] each. */
  readonly m: FloatArray;
  readonly v: FloatArray;
  /** The summed gradients of the slice after `reduce` (padded length). */
  readonly grad: FloatArray;
  private readonly padded: FloatArray;
  private readonly send: FloatArray;

  constructor(readonly layout: ParamLayout, readonly backend: Backend, readonly options: AdamWOptions, readonly dp: Comm, readonly tp: Comm) {
    this.slice = Math.ceil(layout.total / dp.world);
    this.lo = Math.min(layout.total, dp.rank * this.slice);
    this.hi = Math.min(layout.total, this.lo + this.slice);
    this.m = backend.alloc(this.hi - this.lo);
    this.v = backend.alloc(this.hi - this.lo);
    this.grad = backend.alloc(this.slice);
    this.padded = backend.alloc(this.slice * dp.world);
    this.send = backend.alloc(this.slice);
  }

  /** out ← the concatenation of every DP rank's `part` (its slice [lo, hi) of a flat buffer). */
  private gather(part: FloatArray, out: FloatArray): void {
    this.send.fill(0);
    this.send.set(part);
    this.dp.allGather(this.send, this.padded);
    out.set(this.padded.subarray(0, this.layout.total));
  }

  /** grad ← this rank's slice of Σ over the DP ranks of `grads`. */
  reduce(grads: FlatTensors): void {
    this.padded.set(grads.data);
    this.padded.fill(0, grads.data.length);
    this.dp.reduceScatter(this.padded, this.grad);
  }

  /** Σ of squared gradients over the whole model (every slice, every TP shard; replicated tensors once). */
  sumSquares(): number {
    const parts = new Float64Array(2); // [split tensors, replicated tensors]
    this.eachTensor((t, a, b) => {
      parts[t.split === 'replicated' ? 1 : 0] += this.backend.sumSquares(this.grad.subarray(a - this.lo, b - this.lo), b - a);
    });
    this.dp.allReduce(parts);
    const split = parts.subarray(0, 1);
    this.tp.allReduce(split);
    return split[0] + parts[1];
  }

  scale(coef: number): void {
    this.backend.scale(this.grad, coef, this.hi - this.lo);
  }

  /** AdamW on this rank's slice, then every rank gets the whole parameters. */
  update(params: FlatTensors, lr: number): void {
    this.step++;
    const o = this.options;
    this.eachTensor((t, a, b) => {
      const r = (x: FloatArray, base: number) => x.subarray(a - base, b - base);
      this.backend.adamw(r(params.data, 0), r(this.grad, this.lo), r(this.m, this.lo), r(this.v, this.lo), b - a, {
        lr, beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: t.decay ? o.weightDecay : 0, step: this.step,
      });
    });
    this.gather(params.data.subarray(this.lo, this.hi), params.data);
  }

  /** The whole moments of this TP rank's layout (gathered from the DP ranks: every DP rank must call it). */
  moments(): { m: FlatTensors; v: FlatTensors } {
    const gather = (part: FloatArray) => {
      const whole = new FlatTensors(this.layout, this.backend);
      this.gather(part, whole.data);
      return whole;
    };
    return { m: gather(this.m), v: gather(this.v) };
  }

  /** Takes this rank's slice of whole moments (a resume). */
  loadMoments(m: FlatTensors, v: FlatTensors): void {
    this.m.set(m.data.subarray(this.lo, this.hi));
    this.v.set(v.data.subarray(this.lo, this.hi));
  }

  /** fn(tensor, a, b) for each tensor's part [a, b) of this rank's slice. */
  private eachTensor(fn: (t: ParamLayout['tensors'][number], a: number, b: number) => void): void {
    for (const t of this.layout.tensors) {
      const a = Math.max(this.lo, t.offset);
      const b = Math.min(this.hi, t.offset + t.size);
      if (a < b) fn(t, a, b);
    }
  }
}
