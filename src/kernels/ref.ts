/** The reference backend: plain TypeScript loops, float32 or float64. The oracle every faster backend is tested against. */
import type { Backend, DType, FloatArray } from './backend.js';
import { matmulRef, matmulBackwardInputRef, matmulBackwardWeightRef } from './ops/matmul.js';
import { embeddingRef, embeddingBackwardRef } from './ops/embedding.js';
import { rmsnormRef, rmsnormBackwardRef } from './ops/rmsnorm.js';
import { ropeRef, ropeBackwardRef } from './ops/rope.js';
import { attentionRef, attentionBackwardRef, attentionCachedRef } from './ops/attention.js';
import { swigluRef, swigluBackwardRef } from './ops/swiglu.js';
import { addRef, scaleRef, sumSquaresRef } from './ops/elementwise.js';
import { crossEntropyRef } from './ops/crossentropy.js';
import { adamwRef } from './ops/adamw.js';

export function createRefBackend(dtype: DType = 'f32'): Backend {
  return {
    name: dtype === 'f64' ? 'ref-f64' : 'ref',
    dtype,
    alloc: (n: number): FloatArray => (dtype === 'f64' ? new Float64Array(n) : new Float32Array(n)),
    matmul: matmulRef,
    matmulBackwardInput: matmulBackwardInputRef,
    matmulBackwardWeight: matmulBackwardWeightRef,
    embedding: embeddingRef,
    embeddingBackward: embeddingBackwardRef,
    rmsnorm: rmsnormRef,
    rmsnormBackward: rmsnormBackwardRef,
    rope: ropeRef,
    ropeBackward: ropeBackwardRef,
    attention: attentionRef,
    attentionBackward: attentionBackwardRef,
    attentionCached: attentionCachedRef,
    swiglu: swigluRef,
    swigluBackward: swigluBackwardRef,
    add: addRef,
    crossEntropy: crossEntropyRef,
    adamw: adamwRef,
    sumSquares: sumSquaresRef,
    scale: scaleRef,
  };
}
