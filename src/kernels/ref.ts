/**
 * The reference backend: plain TypeScript loops, float32 or float64. The oracle every faster backend is tested against.
 * Each method is the reference the op table (ops/table.ts) names, called after the table's argument checks.
 */
import type { Backend, DType, FloatArray } from './backend.js';
import { OPS, OP_NAMES, SIGNATURES } from './ops/table.js';
import { checkCall } from './ops/signature.js';

export function createRefBackend(dtype: DType = 'f32'): Backend {
  const be: Record<string, unknown> = {
    name: dtype === 'f64' ? 'ref-f64' : 'ref',
    dtype,
    bf16: dtype === 'f32',
    alloc: (n: number): FloatArray => (dtype === 'f64' ? new Float64Array(n) : new Float32Array(n)),
  };
  for (const name of OP_NAMES) {
    const sig = SIGNATURES[name];
    const ref = OPS[name].ref as (...args: unknown[]) => unknown;
    be[name] = (...args: unknown[]): unknown => {
      checkCall(sig, args);
      return ref(...args);
    };
  }
  return be as unknown as Backend;
}
