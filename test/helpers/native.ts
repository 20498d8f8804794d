/** Shared helpers for the native backend tests: skip reason, random data, tolerance checks. */
import assert from 'node:assert/strict';
import { nativeAvailable, nativeLoadError, createNativeBackend, type NativeBackend } from '../../src/kernels/native.js';
import { Rng } from '../../src/util/rng.js';
import type { FloatArray } from '../../src/kernels/backend.js';

/** false when the addon loaded, else the reason to skip (node:test prints it). */
export const skip: false | string = nativeAvailable() ? false : `native addon not built: ${nativeLoadError()}`;

export function native(): NativeBackend {
  return createNativeBackend();
}

export function randn(rng: Rng, n: number, s = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal() * s;
  return a;
}

export function maxAbs(a: ArrayLike<number>, n = a.length): number {
  let m = 0;
  for (let i = 0; i < n; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/**
 * max |got − want| ≤ tol · max(floor, max |want|) over the first n elements, with the worst index in the message.
 * `floor` is the magnitude below which differences are rounding noise (e.g. 1 for outputs of O(1) inputs that
 * happen to cancel to 0).
 */
export function assertClose(got: FloatArray, want: FloatArray, tol: number, what: string, n = want.length, floor = 1e-3): void {
  let worst = 0;
  let at = -1;
  for (let i = 0; i < n; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (!(d <= worst)) {
      worst = d;
      at = i;
    }
  }
  const scale = Math.max(floor, maxAbs(want, n));
  assert.ok(worst <= tol * scale, `${what}: max error ${worst} at [${at}] (got ${got[at]}, want ${want[at]}), scale ${scale}, tol ${tol}`);
}

/** Runs fn once per SIMD path this CPU has (generic, avx2, avx512), restoring the default afterwards. */
export function forEachSimd(be: NativeBackend, fn: (level: string) => void): void {
  const levels = ['generic', 'avx2', 'avx512'] as const;
  const best = be.addon.simdDetected();
  try {
    for (const l of levels.slice(0, levels.indexOf(best as (typeof levels)[number]) + 1)) {
      be.addon.setSimd(l);
      fn(l);
    }
  } finally {
    be.addon.setSimd('default');
  }
}
