/**
 * The op table: every kernel op declared once — its name, its arguments with their kinds and the lengths its
 * buffers must have (the language: ops/signature.ts), conditions between sizes, and the TypeScript reference that
 * implements it. From each entry follow:
 *   - its method type in `Backend` (backend.ts: `BackendOps`),
 *   - the ref backend's method: the reference behind the table's argument checks (ref.ts),
 *   - the native backend's method: the addon's entry of the same name (native/ops/<file>.cc, `LT_OP(name)`), bound
 *     by native.ts with this signature, which the addon checks every call against before its kernel runs.
 * Adding an op: an entry here, its reference in ops/<file>.ts, its native entry in native/ops/<file>.cc, and tests.
 */
import type { AdamWParams, AttentionShape, FloatArray, RopeTable } from '../backend.js';
import { STRUCTS, parseSignature, type OpSpec, type Signature } from './signature.js';
import { matmulRef, matmulBackwardInputRef, matmulBackwardWeightRef } from './matmul.js';
import { embeddingRef, embeddingBackwardRef } from './embedding.js';
import { rmsnormRef, rmsnormBackwardRef } from './rmsnorm.js';
import { ropeRef, ropeBackwardRef } from './rope.js';
import { attentionRef, attentionBackwardRef, attentionCachedRef, attentionCachedF16Ref, attentionBf16Ref, attentionBackwardBf16Ref } from './attention.js';
import { swigluRef, swigluBackwardRef } from './swiglu.js';
import { decodeLayerRef } from './decode.js';
import { addRef, scaleRef, sumSquaresRef } from './elementwise.js';
import { crossEntropyRef, crossEntropyBf16Ref, logSumExpRef, softmaxScaledRef } from './crossentropy.js';
import { adamwRef } from './adamw.js';
import { matmulQ8_0Ref, matmulQ4_0Ref, matmulQ4_0x8Ref, matmulQ8_0x8Ref, matmulQ4KRef, matmulQ6KRef, matmulWeightBf16Ref, repackQ4_0x8Ref, repackQ8_0x8Ref } from './quant.js';
import {
  toBf16Ref, fromBf16Ref, matmulBf16Ref, matmulBackwardInputBf16Ref, matmulBackwardWeightBf16Ref, packBf16Ref, packBf16TRef, matmulBf16PackedRef,
  matmulBackwardInputBf16PackedRef,
} from './bf16.js';

// ---- the types that follow from an argument list ----

interface KindTypes {
  f: FloatArray;
  i32: Int32Array;
  f64: Float64Array;
  u8: Uint8Array;
  bf16: Uint16Array;
  int: number;
  num: number;
  bool: boolean;
  AttentionShape: AttentionShape;
  RopeTable: RopeTable;
  AdamWParams: AdamWParams;
}
type KindOf<S> = S extends `${string}: ${infer R}` ? (R extends `${infer K}[${string}]` ? K : R) : never;
type ArgType<S> = S extends `${infer B} | null` ? KindTypes[KindOf<B> & keyof KindTypes] | null : KindTypes[KindOf<S> & keyof KindTypes];
/** The parameter list an argument list declares (`name?:` arguments optional). */
export type Params<A extends readonly string[], Acc extends unknown[] = []> =
  A extends readonly [infer H extends string, ...infer R extends readonly string[]]
    ? H extends `${string}?: ${string}` ? Params<R, [...Acc, ArgType<H>?]> : Params<R, [...Acc, ArgType<H>]>
    : Acc;
/** The function type an op declares. */
export type OpFn<S> = S extends OpSpec & { args: infer A extends readonly string[] }
  ? (...args: Params<A>) => S['returns'] extends 'num' ? number : void
  : never;

// every field named in STRUCTS is a field of the interface it describes
STRUCTS satisfies {
  AttentionShape: readonly `${keyof AttentionShape}: ${string}`[];
  RopeTable: readonly `${keyof RopeTable}: ${string}`[];
  AdamWParams: readonly `${keyof AdamWParams}: ${string}`[];
};

interface Decl<A extends readonly string[], R extends 'void' | 'num'> extends OpSpec {
  args: A;
  returns: R;
}

/** An op returning nothing; `ref` must have the declared type. */
function op<const A extends readonly string[]>(
  args: A, ref: NoInfer<(...a: Params<A>) => void>, where: readonly (readonly [string, string])[] = [],
): Decl<A, 'void'> & { ref: (...a: Params<A>) => void } {
  return { args, returns: 'void', where, ref };
}

/** An op returning a number. */
function fn<const A extends readonly string[]>(args: A, ref: NoInfer<(...a: Params<A>) => number>): Decl<A, 'num'> & { ref: (...a: Params<A>) => number } {
  return { args, returns: 'num', where: [], ref };
}

const QK32 = ['K % 32 == 0', 'row length K {K} is not a multiple of the block size 32'] as const;
const QK256 = ['K % 256 == 0', 'row length K {K} is not a multiple of the block size 256'] as const;
const GQA = ['nHeads % nKvHeads == 0', 'nHeads {nHeads} not divisible by nKvHeads {nKvHeads}'] as const;
const HD2 = ['headDim % 2 == 0', 'head dimension {headDim} must be even'] as const;
const ROPE = [
  ['headDim % 2 == 0', 'head dimension {headDim} must be even'],
  ['posOffset + seq <= maxSeqLen', 'positions {posOffset}..{posOffset + seq - 1} exceed the rope table ({maxSeqLen})'],
] as const;

// ---- the table ----
// Conventions (all row-major): see backend.ts. Gradients either overwrite or accumulate (`+=`); each op says which.

export const OPS = {
  /** out[M,N] = x[M,K]·w[N,K]ᵀ (or += when accumulate). */
  matmul: op(['out: f[M*N]', 'x: f[M*K]', 'w: f[N*K]', 'M: int', 'K: int', 'N: int', 'accumulate?: bool'], matmulRef),
  /** dx[M,K] = dy[M,N]·w[N,K] (or += when accumulate). */
  matmulBackwardInput: op(['dx: f[M*K]', 'dy: f[M*N]', 'w: f[N*K]', 'M: int', 'K: int', 'N: int', 'accumulate?: bool'], matmulBackwardInputRef),
  /** dw[N,K] += dy[M,N]ᵀ·x[M,K]. Always accumulates (gradient accumulation). */
  matmulBackwardWeight: op(['dw: f[N*K]', 'dy: f[M*N]', 'x: f[M*K]', 'M: int', 'K: int', 'N: int'], matmulBackwardWeightRef),

  /**
   * out[M,N] (+)= x[M,K]·wᵀ for a weight [N,K] in Q8_0 blocks (34 bytes per 32 values, ops/quant.ts); x is quantized
   * to int8 per block of 32 (llama.cpp's scheme) below QUANT_GEMM_ROWS (16) rows; from there on (prefill) the product
   * is the float one on the dequantized weights. Inference only. Likewise matmulQ4_0, matmulQ4K, matmulQ6K.
   */
  matmulQ8_0: op(['out: f[M*N]', 'x: f[M*K]', 'w: u8[N*(K/32)*34]', 'M: int', 'K: int', 'N: int', 'accumulate?: bool'], matmulQ8_0Ref, [QK32]),
  /** out (+)= x·wᵀ, w [N,K] in Q4_0 blocks (18 bytes per 32 values). */
  matmulQ4_0: op(['out: f[M*N]', 'x: f[M*K]', 'w: u8[N*(K/32)*18]', 'M: int', 'K: int', 'N: int', 'accumulate?: bool'], matmulQ4_0Ref, [QK32]),
  /**
   * matmulQ4_0's int8-activation product over w repacked 8 rows at a time (repackX8 in ops/quant.ts: rows padded
   * to a multiple of 8, 144 bytes per 8 rows and 32 columns), for any number of rows: below 16 equal to matmulQ4_0
   * on the unpacked w up to float summation order; from 16 on (prefill) the activations stay int8 per block, where
   * matmulQ4_0 multiplies in float32 on dequantized weights.
   */
  matmulQ4_0x8: op(['out: f[M*N]', 'x: f[M*K]', 'w: u8[((N+7)/8)*(K/32)*144]', 'M: int', 'K: int', 'N: int', 'accumulate?: bool'], matmulQ4_0x8Ref, [QK32]),
  /** The same for Q8_0 repacked by repackQ8_0x8 (272 bytes per 8 rows and 32 columns). */
  matmulQ8_0x8: op(['out: f[M*N]', 'x: f[M*K]', 'w: u8[((N+7)/8)*(K/32)*272]', 'M: int', 'K: int', 'N: int', 'accumulate?: bool'], matmulQ8_0x8Ref, [QK32]),
  /**
   * out = w [N,K] in Q4_0 blocks repacked 8 rows at a time for matmulQ4_0x8 (repackX8's layout; the padding rows'
   * bytes zeroed). Done once per weight at load; the native one moves the bytes ~50x faster than the reference.
   */
  repackQ4_0x8: op(['out: u8[((N+7)/8)*(K/32)*144]', 'w: u8[N*(K/32)*18]', 'N: int', 'K: int'], repackQ4_0x8Ref, [QK32]),
  /** The same for Q8_0 (272 bytes per 8 rows and 32 columns). */
  repackQ8_0x8: op(['out: u8[((N+7)/8)*(K/32)*272]', 'w: u8[N*(K/32)*34]', 'N: int', 'K: int'], repackQ8_0x8Ref, [QK32]),
  /** out (+)= x·wᵀ, w [N,K] in Q4_K blocks (144 bytes per 256 values). */
  matmulQ4K: op(['out: f[M*N]', 'x: f[M*K]', 'w: u8[N*(K/256)*144]', 'M: int', 'K: int', 'N: int', 'accumulate?: bool'], matmulQ4KRef, [QK256]),
  /** out (+)= x·wᵀ, w [N,K] in Q6_K blocks (210 bytes per 256 values). */
  matmulQ6K: op(['out: f[M*N]', 'x: f[M*K]', 'w: u8[N*(K/256)*210]', 'M: int', 'K: int', 'N: int', 'accumulate?: bool'], matmulQ6KRef, [QK256]),
  /** out (+)= x·wᵀ, w [N,K] in bfloat16 (2 bytes per value): a float product, the weights widened as they are read. */
  matmulWeightBf16: op(['out: f[M*N]', 'x: f[M*K]', 'w: u8[N*K*2]', 'M: int', 'K: int', 'N: int', 'accumulate?: bool'], matmulWeightBf16Ref),
  // bfloat16 (--dtype bf16): buffers of kind bf16 are Uint16Arrays of bf16 bits; products accumulate in float32
  /** out = bf16(x), round to nearest even. */
  toBf16: op(['out: bf16[n]', 'x: f[n]', 'n: int'], toBf16Ref),
  /** out = float(x) (exact). */
  fromBf16: op(['out: f[n]', 'x: bf16[n]', 'n: int'], fromBf16Ref),
  /** matmul with bf16 inputs: out[M,N] (+)= x[M,K]·w[N,K]ᵀ. */
  matmulBf16: op(['out: f[M*N]', 'x: bf16[M*K]', 'w: bf16[N*K]', 'M: int', 'K: int', 'N: int', 'accumulate?: bool'], matmulBf16Ref),
  /** matmulBackwardInput with bf16 inputs: dx[M,K] (+)= dy[M,N]·w[N,K]. */
  matmulBackwardInputBf16: op(['dx: f[M*K]', 'dy: bf16[M*N]', 'w: bf16[N*K]', 'M: int', 'K: int', 'N: int', 'accumulate?: bool'], matmulBackwardInputBf16Ref),
  /** matmulBackwardWeight with bf16 inputs: dw[N,K] += dy[M,N]ᵀ·x[M,K] (float32 gradients). */
  matmulBackwardWeightBf16: op(['dw: f[N*K]', 'dy: bf16[M*N]', 'x: bf16[M*K]', 'M: int', 'K: int', 'N: int'], matmulBackwardWeightBf16Ref),
  /**
   * w[N,K] packed for matmulBf16Packed, once for many products (the output head's weight, read by every block of
   * logits): the k-pairs of 32 rows of w at a time, the layout the AVX512_BF16 kernel reads (ops/bf16.ts, packPanels).
   */
  packBf16: op(['out: bf16[((K+1)/2)*((N+31)/32)*64]', 'w: bf16[N*K]', 'N: int', 'K: int'], packBf16Ref),
  /** w[N,K] packed for matmulBackwardInputBf16Packed: the row pairs of 32 columns of w at a time. */
  packBf16T: op(['out: bf16[((N+1)/2)*((K+31)/32)*64]', 'w: bf16[N*K]', 'N: int', 'K: int'], packBf16TRef),
  /** matmulBf16 with w packed by packBf16: out[M,N] (+)= x[M,K]·w[N,K]ᵀ. */
  matmulBf16Packed: op(['out: f[M*N]', 'x: bf16[M*K]', 'wp: bf16[((K+1)/2)*((N+31)/32)*64]', 'M: int', 'K: int', 'N: int', 'accumulate?: bool'], matmulBf16PackedRef),
  /** matmulBackwardInputBf16 with w packed by packBf16T: dx[M,K] (+)= dy[M,N]·w[N,K]. */
  matmulBackwardInputBf16Packed: op(
    ['dx: f[M*K]', 'dy: bf16[M*N]', 'wp: bf16[((N+1)/2)*((K+31)/32)*64]', 'M: int', 'K: int', 'N: int', 'accumulate?: bool'], matmulBackwardInputBf16PackedRef,
  ),

  /** out[n,:] = table[tokens[n],:]. */
  embedding: op(['out: f[n*dim]', 'table: f', 'tokens: i32[n]', 'dim: int'], embeddingRef),
  /** dtable[tokens[n],:] += dout[n,:]. */
  embeddingBackward: op(['dtable: f', 'dout: f[n*dim]', 'tokens: i32[n]', 'dim: int'], embeddingBackwardRef),

  /** out = x / rms(x) · w per row; rstd[row] saved for backward. */
  rmsnorm: op(['out: f[rows*dim]', 'rstd: f[rows]', 'x: f[rows*dim]', 'w: f[dim]', 'rows: int', 'dim: int', 'eps: num'], rmsnormRef),
  /** dx += ∂L/∂x, dw += ∂L/∂w. */
  rmsnormBackward: op(
    ['dx: f[rows*dim]', 'dw: f[dim]', 'dout: f[rows*dim]', 'x: f[rows*dim]', 'w: f[dim]', 'rstd: f[rows]', 'rows: int', 'dim: int'],
    rmsnormBackwardRef,
  ),

  /** Rotate adjacent pairs of each head in place, token t of each sequence at position posOffset + t. */
  rope: op(['x: f[batch*seq*nHeads*headDim]', 'batch: int', 'seq: int', 'nHeads: int', 'table: RopeTable', 'posOffset?: int'], ropeRef, ROPE),
  /** Backward of rope: rotation by the opposite angle, in place. */
  ropeBackward: op(['x: f[batch*seq*nHeads*headDim]', 'batch: int', 'seq: int', 'nHeads: int', 'table: RopeTable', 'posOffset?: int'], ropeBackwardRef, ROPE),

  /** Causal attention: out[B,T,H,hd]; lse[B,H,T] (log-sum-exp of scaled scores) saved for backward. No T×T buffer. */
  attention: op(
    ['out: f[batch*seq*nHeads*headDim]', 'lse: f[batch*nHeads*seq]', 'q: f[batch*seq*nHeads*headDim]', 'k: f[batch*seq*nKvHeads*headDim]',
      'v: f[batch*seq*nKvHeads*headDim]', 's: AttentionShape'],
    attentionRef, [GQA],
  ),
  /**
   * Attention of n new query rows of one sequence over its key/value cache (decode, chunked prefill): query row i
   * sits at position pos + i and attends to cache positions 0..pos+i. q and out are [n, nHeads·headDim]; k and v
   * hold the cache rows [≥ pos+n, nKvHeads·headDim] from position 0. Overwrites out. No backward (inference only).
   */
  attentionCached: op(
    ['out: f[n*nHeads*headDim]', 'q: f[n*nHeads*headDim]', 'k: f[(pos+n)*nKvHeads*headDim]', 'v: f[(pos+n)*nKvHeads*headDim]',
      'n: int', 'pos: int', 'nHeads: int', 'nKvHeads: int', 'headDim: int'],
    attentionCachedRef, [GQA],
  ),
  /**
   * attentionCached over one layer of a cache held in IEEE half (`--kv-cache f16`, llama.cpp's default cache type),
   * head-major: kc and vc are [nKvHeads, maxSeq, headDim] half bits (Uint16Arrays: the bf16 kind), each kv head's
   * positions contiguous. The n new rows k, v [n, nKvHeads·headDim] are rounded into positions pos..pos+n-1 (pos + n
   * ≤ maxSeq), then the n query rows attend over positions 0..pos+i, the cached rows widened exactly to float32.
   * Overwrites out; writes those positions of kc and vc.
   */
  /**
   * One layer of a batch-1 decode step over a float32 cache (ops/decode.ts): x[dim] is the residual stream, updated in
   * place; xn, rstd, q, k, v, att, h1, h3, gate are scratch (left as blockForward leaves its buffers); kc and vc are
   * the layer's cache rows from position 0, the new token's key and value written at row pos. The same ops in the same
   * order as blockForward with a CachedAttention, so the same bits.
   */
  decodeLayer: op(
    ['x: f[dim]', 'xn: f[dim]', 'rstd: f[1]', 'q: f[nHeads*headDim]', 'k: f[nKvHeads*headDim]', 'v: f[nKvHeads*headDim]', 'att: f[nHeads*headDim]',
      'h1: f[ffn]', 'h3: f[ffn]', 'gate: f[ffn]',
      'attnNorm: f[dim]', 'wq: f[nHeads*headDim*dim]', 'wk: f[nKvHeads*headDim*dim]', 'wv: f[nKvHeads*headDim*dim]', 'wo: f[dim*nHeads*headDim]',
      'ffnNorm: f[dim]', 'w1: f[ffn*dim]', 'w3: f[ffn*dim]', 'w2: f[dim*ffn]',
      'kc: f[(pos+1)*nKvHeads*headDim]', 'vc: f[(pos+1)*nKvHeads*headDim]',
      'table: RopeTable', 'dim: int', 'nHeads: int', 'nKvHeads: int', 'ffn: int', 'pos: int', 'eps: num'],
    decodeLayerRef, [GQA, ['headDim % 2 == 0', 'head dimension {headDim} must be even'], ['pos < maxSeqLen', 'position {pos} exceeds the rope table ({maxSeqLen})']],
  ),
  attentionCachedF16: op(
    ['out: f[n*nHeads*headDim]', 'q: f[n*nHeads*headDim]', 'k: f[n*nKvHeads*headDim]', 'v: f[n*nKvHeads*headDim]',
      'kc: bf16[nKvHeads*maxSeq*headDim]', 'vc: bf16[nKvHeads*maxSeq*headDim]',
      'n: int', 'pos: int', 'nHeads: int', 'nKvHeads: int', 'headDim: int', 'maxSeq: int'],
    attentionCachedF16Ref, [GQA],
  ),
  /** Overwrites dq, dk, dv. */
  attentionBackward: op(
    ['dq: f[batch*seq*nHeads*headDim]', 'dk: f[batch*seq*nKvHeads*headDim]', 'dv: f[batch*seq*nKvHeads*headDim]',
      'dout: f[batch*seq*nHeads*headDim]', 'q: f[batch*seq*nHeads*headDim]', 'k: f[batch*seq*nKvHeads*headDim]',
      'v: f[batch*seq*nKvHeads*headDim]', 'out: f[batch*seq*nHeads*headDim]', 'lse: f[batch*nHeads*seq]', 's: AttentionShape'],
    attentionBackwardRef, [GQA],
  ),
  /**
   * attention with bf16 q, k, v (--dtype bf16; q and k after RoPE): float32 scores, softmax statistics and sums, the
   * probabilities rounded to bf16 before P·V over each 64-key tile of the online softmax (ops/attention.ts).
   */
  attentionBf16: op(
    ['out: f[batch*seq*nHeads*headDim]', 'lse: f[batch*nHeads*seq]', 'q: bf16[batch*seq*nHeads*headDim]', 'k: bf16[batch*seq*nKvHeads*headDim]',
      'v: bf16[batch*seq*nKvHeads*headDim]', 's: AttentionShape'],
    attentionBf16Ref, [GQA, HD2],
  ),
  /**
   * Backward of attentionBf16 from bf16 dout, q, k, v and out (the forward's output rounded to bf16), its lse: P and
   * dS rounded to bf16 before the products that take them. Overwrites dq, dk, dv (float32).
   */
  attentionBackwardBf16: op(
    ['dq: f[batch*seq*nHeads*headDim]', 'dk: f[batch*seq*nKvHeads*headDim]', 'dv: f[batch*seq*nKvHeads*headDim]',
      'dout: bf16[batch*seq*nHeads*headDim]', 'q: bf16[batch*seq*nHeads*headDim]', 'k: bf16[batch*seq*nKvHeads*headDim]',
      'v: bf16[batch*seq*nKvHeads*headDim]', 'out: bf16[batch*seq*nHeads*headDim]', 'lse: f[batch*nHeads*seq]', 's: AttentionShape'],
    attentionBackwardBf16Ref, [GQA, HD2],
  ),

  /** out = silu(a)·b elementwise. */
  swiglu: op(['out: f[n]', 'a: f[n]', 'b: f[n]', 'n: int'], swigluRef),
  /** Overwrites da, db. */
  swigluBackward: op(['da: f[n]', 'db: f[n]', 'dout: f[n]', 'a: f[n]', 'b: f[n]', 'n: int'], swigluBackwardRef),

  /** out = a + b (out may alias a). */
  add: op(['out: f[n]', 'a: f[n]', 'b: f[n]', 'n: int'], addRef),

  /**
   * Softmax cross-entropy over rows of logits[rows,V]. Returns the summed loss over rows whose target is >= 0.
   * When dlogits is given (it may alias logits) it is overwritten with gradScale·(softmax − onehot), zero for ignored rows.
   */
  crossEntropy: fn(['logits: f[rows*V]', 'targets: i32[rows]', 'rows: int', 'V: int', 'dlogits: f[rows*V] | null', 'gradScale: num'], crossEntropyRef),
  /**
   * crossEntropy with the gradient in bfloat16 (--dtype bf16, where the gradient only feeds the head's bf16
   * products): dlogits = bf16(the float32 gradient crossEntropy writes), without that float32 buffer (native: each
   * softmax value from the exp the log-sum-exp summed, so the float32 gradient before rounding may differ from
   * crossEntropy's in its last bits; the loss is the same).
   */
  crossEntropyBf16: fn(['logits: f[rows*V]', 'targets: i32[rows]', 'rows: int', 'V: int', 'dlogits: bf16[rows*V]', 'gradScale: num'], crossEntropyBf16Ref),
  /**
   * out[r] = log Σ_j exp(x[r,j]), max-shifted (the log-sum-exp of each row; with softmaxScaled, the pieces of a
   * cross-entropy whose vocabulary is split over ranks).
   */
  logSumExp: op(['out: f[rows]', 'x: f[rows*V]', 'rows: int', 'V: int'], logSumExpRef),
  /** out[r,j] = scale·exp(x[r,j] − lse[r]) (scale·softmax given each row's log-sum-exp; out may alias x). */
  softmaxScaled: op(['out: f[rows*V]', 'x: f[rows*V]', 'lse: f[rows]', 'rows: int', 'V: int', 'scale: num'], softmaxScaledRef),

  /** Decoupled AdamW over n elements (PyTorch semantics). */
  adamw: op(['p: f[n]', 'g: f[n]', 'm: f[n]', 'v: f[n]', 'n: int', 'h: AdamWParams'], adamwRef),
  /** Σ x² in float64. */
  sumSquares: fn(['x: f[n]', 'n: int'], sumSquaresRef),
  /** x *= s. */
  scale: op(['x: f[n]', 's: num', 'n: int'], scaleRef),
};

/** Ops of the native addon only (no Backend method, no reference): checked and bound like the table's. */
export const NATIVE_OPS = {
  /** C[M,N] (+)= op(A)·op(B); A is [M,K] ([K,M] when transA), B is [K,N] ([N,K] when transB). */
  sgemm: {
    args: ['C: f[M*N]', 'A: f[M*K]', 'B: f[K*N]', 'M: int', 'N: int', 'K: int', 'transA?: bool', 'transB?: bool', 'accumulate?: bool'],
    returns: 'void',
    where: [],
  },
  /** dst = src over the pool's threads (the copy-bandwidth probe of inference/bench.ts). */
  copy: { args: ['dst: f[n]', 'src: f[n]', 'n: int'], returns: 'void', where: [] },
  /**
   * Σ x over the pool's threads, each reading a contiguous share once in float32 lanes (the read-bandwidth probe of
   * inference/bench.ts: a plain stream, the ceiling of any kernel that reads weights once per token).
   */
  readSum: { args: ['x: f[n]', 'n: int'], returns: 'num', where: [] },
  /** The index of the largest of x[0..n) (the first of equal maxima; a NaN past x[0] never wins): sampler.ts's argmax. */
  argmax: { args: ['x: f[n]', 'n: int'], returns: 'num', where: [] },
} as const satisfies Record<string, OpSpec>;

export type OpName = keyof typeof OPS;
export type NativeOpName = keyof typeof NATIVE_OPS;

/** The kernel methods of a Backend, one per entry of the table (with its documentation). */
export type BackendOps = { [K in keyof typeof OPS]: OpFn<(typeof OPS)[K]> };
/** The checked native functions beyond the Backend's. */
export type NativeOps = { [K in keyof typeof NATIVE_OPS]: OpFn<(typeof NATIVE_OPS)[K]> };

export const OP_NAMES = Object.keys(OPS) as OpName[];

/** Parsed signatures of the table's ops and the native-only ones (parsed once, when this module loads). */
export const SIGNATURES: Record<OpName | NativeOpName, Signature> = Object.fromEntries(
  Object.entries({ ...OPS, ...NATIVE_OPS }).map(([name, spec]) => [name, parseSignature(name, spec)]),
) as Record<OpName | NativeOpName, Signature>;
