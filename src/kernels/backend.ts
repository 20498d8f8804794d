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

export interface Backend {
  readonly name: string;
  readonly dtype: DType;
  alloc(n: number): FloatArray;

  /** out[M,N] = x[M,K]·w[N,K]ᵀ (or += when accumulate). */
  matmul(out: FloatArray, x: FloatArray, w: FloatArray, M: number, K: number, N: number, accumulate?: boolean): void;
  /** dx[M,K] = dy[M,N]·w[N,K] (or += when accumulate). */
  matmulBackwardInput(dx: FloatArray, dy: FloatArray, w: FloatArray, M: number, K: number, N: number, accumulate?: boolean): void;
  /** dw[N,K] += dy[M,N]ᵀ·x[M,K]. Always accumulates (gradient accumulation). */
  matmulBackwardWeight(dw: FloatArray, dy: FloatArray, x: FloatArray, M: number, K: number, N: number): void;

  /** out[n,:] = table[tokens[n],:]. */
  embedding(out: FloatArray, table: FloatArray, tokens: Int32Array, dim: number): void;
  /** dtable[tokens[n],:] += dout[n,:]. */
  embeddingBackward(dtable: FloatArray, dout: FloatArray, tokens: Int32Array, dim: number): void;

  /** out = x / rms(x) · w per row; rstd[row] saved for backward. */
  rmsnorm(out: FloatArray, rstd: FloatArray, x: FloatArray, w: FloatArray, rows: number, dim: number, eps: number): void;
  /** dx += ∂L/∂x, dw += ∂L/∂w. */
  rmsnormBackward(dx: FloatArray, dw: FloatArray, dout: FloatArray, x: FloatArray, w: FloatArray, rstd: FloatArray, rows: number, dim: number): void;

  /** Rotate adjacent pairs of each head in place, token t of each sequence at position posOffset + t. */
  rope(x: FloatArray, batch: number, seq: number, nHeads: number, table: RopeTable, posOffset?: number): void;
  /** Backward of rope: rotation by the opposite angle, in place. */
  ropeBackward(dx: FloatArray, batch: number, seq: number, nHeads: number, table: RopeTable, posOffset?: number): void;

  /** Causal attention: out[B,T,H,hd]; lse[B,H,T] (log-sum-exp of scaled scores) saved for backward. No T×T buffer. */
  attention(out: FloatArray, lse: FloatArray, q: FloatArray, k: FloatArray, v: FloatArray, s: AttentionShape): void;
  /**
   * Attention of n new query rows of one sequence over its key/value cache (decode, chunked prefill): query row i
   * sits at position pos + i and attends to cache positions 0..pos+i. q and out are [n, nHeads·headDim]; k and v
   * hold the cache rows [≥ pos+n, nKvHeads·headDim] from position 0. Overwrites out. No backward (inference only).
   */
  attentionCached(out: FloatArray, q: FloatArray, k: FloatArray, v: FloatArray, n: number, pos: number, nHeads: number, nKvHeads: number, headDim: number): void;
  /** Overwrites dq, dk, dv. */
  attentionBackward(
    dq: FloatArray, dk: FloatArray, dv: FloatArray, dout: FloatArray,
    q: FloatArray, k: FloatArray, v: FloatArray, out: FloatArray, lse: FloatArray, s: AttentionShape,
  ): void;

  /** out = silu(a)·b elementwise. */
  swiglu(out: FloatArray, a: FloatArray, b: FloatArray, n: number): void;
  /** Overwrites da, db. */
  swigluBackward(da: FloatArray, db: FloatArray, dout: FloatArray, a: FloatArray, b: FloatArray, n: number): void;

  /** out = a + b (out may alias a). */
  add(out: FloatArray, a: FloatArray, b: FloatArray, n: number): void;

  /**
   * Softmax cross-entropy over rows of logits[rows,V]. Returns the summed loss over rows whose target is >= 0.
   * When dlogits is given (it may alias logits) it is overwritten with gradScale·(softmax − onehot), zero for ignored rows.
   */
  crossEntropy(logits: FloatArray, targets: Int32Array, rows: number, V: number, dlogits: FloatArray | null, gradScale: number): number;

  /** Decoupled AdamW over n elements (PyTorch semantics). */
  adamw(p: FloatArray, g: FloatArray, m: FloatArray, v: FloatArray, n: number, h: AdamWParams): void;
  /** Σ x² in float64. */
  sumSquares(x: FloatArray, n: number): number;
  /** x *= s. */
  scale(x: FloatArray, s: number, n: number): void;
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
