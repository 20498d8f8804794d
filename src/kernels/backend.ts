/**
 * The compute layer. A Backend holds every kernel the model needs; the model code calls only these.
 *
 * Conventions (all row-major, no hidden strides):
 * - A linear layer's weight is stored [out, in] (PyTorch/Meta layout), so its forward is y = x·Wᵀ.
 * - Activations of B sequences of T tokens are [B·T, features]; attention heads are interleaved
 *   per token: q is [B, T, nHeads, headDim], k/v are [B, T, nKvHeads, headDim].
 * - Kernels that produce gradients for a shared input either overwrite (`dq`, `dk`, `dv`, softmax-CE)
 *   or accumulate (`+=`): each signature says which, because the residual stream relies on it.
 * - The element type is whatever the backend allocates: `ref` can run in float64 as the oracle.
 */
import type { BackendOps } from './ops/table.js';

export type { BackendOps };
export type FloatArray = Float32Array | Float64Array;
export type DType = 'f32' | 'f64';

export interface RopeTable {
  /** cos/sin of position·θ^(-2i/headDim), [maxSeqLen, headDim/2], always float64. */
  cos: Float64Array;
  sin: Float64Array;
  headDim: number;
  maxSeqLen: number;
}

export interface AttentionShape {
  batch: number;
  seq: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
}

export interface AdamWParams {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step number (for bias correction). */
  step: number;
}

/**
 * The kernels are declared in the op table (ops/table.ts): each entry's argument list gives its method type here,
 * its argument checks, and its ref and native bindings.
 */
export interface Backend extends BackendOps {
  readonly name: string;
  readonly dtype: DType;
  /** Whether the backend computes the bfloat16 ops for mixed precision (--dtype bf16): not the float64 oracle. */
  readonly bf16: boolean;
  alloc(n: number): FloatArray;
  /** A zeroed bfloat16 buffer (Uint16Array) of n values; without it, new Uint16Array(n). */
  allocBf16?(n: number): Uint16Array;
}

/** Throws a descriptive error when a buffer is too short for the shape a kernel was given. */
export function need(name: string, arr: ArrayLike<number>, n: number, op: string): void {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`${op}: bad size ${n} for ${name}`);
  if (arr.length < n) throw new RangeError(`${op}: ${name} has ${arr.length} elements, shape needs ${n}`);
}

export function makeRopeTable(headDim: number, maxSeqLen: number, theta: number): RopeTable {
  const half = headDim / 2;
  const cos = new Float64Array(maxSeqLen * half);
  const sin = new Float64Array(maxSeqLen * half);
  for (let i = 0; i < half; i++) {
    // Meta computes the frequencies in float32; round them the same way so positions agree to the last bit of the angle.
    const freq = Math.fround(1 / Math.fround(Math.pow(theta, Math.fround((2 * i) / headDim))));
    for (let p = 0; p < maxSeqLen; p++) {
      const a = Math.fround(p * freq);
      cos[p * half + i] = Math.cos(a);
      sin[p * half + i] = Math.sin(a);
    }
  }
  return { cos, sin, headDim, maxSeqLen };
}
