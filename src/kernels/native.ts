/**
 * The `native` backend: the C++ addon in native/ (Node-API, built by node-gyp at `npm install`), float32 only.
 * Typed arrays go to C by pointer, without copies; the addon checks every buffer against the shape it is used with
 * and throws a descriptive RangeError/TypeError instead of touching memory it does not own.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AdamWParams, AttentionShape, Backend, FloatArray, RopeTable } from './backend.js';

type F = FloatArray;

/** The functions the addon exports (native/addon.cc). */
export interface NativeAddon {
  matmul(out: F, x: F, w: F, M: number, K: number, N: number, acc: boolean): void;
  matmulBackwardInput(dx: F, dy: F, w: F, M: number, K: number, N: number, acc: boolean): void;
  matmulBackwardWeight(dw: F, dy: F, x: F, M: number, K: number, N: number): void;
  /** C[M,N] (+)= op(A)·op(B); A is [M,K] ([K,M] when transA), B is [K,N] ([N,K] when transB). */
  sgemm(C: F, A: F, B: F, M: number, N: number, K: number, transA: boolean, transB: boolean, acc: boolean): void;
  embedding(out: F, table: F, tokens: Int32Array, dim: number): void;
  embeddingBackward(dtable: F, dout: F, tokens: Int32Array, dim: number): void;
  rmsnorm(out: F, rstd: F, x: F, w: F, rows: number, dim: number, eps: number): void;
  rmsnormBackward(dx: F, dw: F, dout: F, x: F, w: F, rstd: F, rows: number, dim: number): void;
  rope(x: F, batch: number, seq: number, nHeads: number, cos: Float64Array, sin: Float64Array, headDim: number, maxSeqLen: number, posOffset: number, sign: number): void;
  attention(out: F, lse: F, q: F, k: F, v: F, B: number, T: number, H: number, KV: number, hd: number): void;
  attentionBackward(dq: F, dk: F, dv: F, dout: F, q: F, k: F, v: F, out: F, lse: F, B: number, T: number, H: number, KV: number, hd: number): void;
  attentionCached(out: F, q: F, k: F, v: F, n: number, pos: number, H: number, KV: number, hd: number): void;
  swiglu(out: F, a: F, b: F, n: number): void;
  swigluBackward(da: F, db: F, dout: F, a: F, b: F, n: number): void;
  add(out: F, a: F, b: F, n: number): void;
  crossEntropy(logits: F, targets: Int32Array, rows: number, V: number, dlogits: F | null, gradScale: number): number;
  adamw(p: F, g: F, m: F, v: F, n: number, lr: number, beta1: number, beta2: number, eps: number, wd: number, step: number): void;
  sumSquares(x: F, n: number): number;
  scale(x: F, s: number, n: number): void;
  threads(): number;
  setThreads(n: number): number;
  simd(): string;
  simdDetected(): string;
  setSimd(level: 'generic' | 'avx2' | 'avx512' | 'default'): string;
}

export interface NativeBackend extends Backend {
  readonly addon: NativeAddon;
  /** Threads of the process-wide pool (LLAMA_TS_THREADS, default: the CPUs this process may use). */
  threads(): number;
  /** Resizes the process-wide pool; n <= 0 restores the default. Returns the new size. */
  setThreads(n: number): number;
  /** SIMD path in use: 'avx512' | 'avx2' | 'generic'. */
  simd(): string;
}

const ADDON_FILE = 'llama_ts_native.node';

function packageRoot(): string {
  // this file is dist/src/kernels/native.js (or src/kernels/native.ts under a TS loader)
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'binding.gyp'))) return dir;
    dir = dirname(dir);
  }
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
}

let loaded: { addon: NativeAddon | null; error: string | null } | null = null;

/** Loads build/Release/llama_ts_native.node once. Never throws: returns why it could not. */
export function loadNative(): { addon: NativeAddon | null; error: string | null } {
  if (loaded) return loaded;
  if (process.env.LLAMA_TS_NO_NATIVE === '1') {
    loaded = { addon: null, error: 'disabled by LLAMA_TS_NO_NATIVE=1' };
    return loaded;
  }
  const root = packageRoot();
  const candidates = [join(root, 'build', 'Release', ADDON_FILE), join(root, 'build', 'Debug', ADDON_FILE)];
  const file = candidates.find((f) => existsSync(f));
  if (!file) {
    loaded = { addon: null, error: `native addon not built (no build/Release/${ADDON_FILE}; run 'npm install' with a C++ compiler, or 'npm run build:native')` };
    return loaded;
  }
  try {
    const require = createRequire(import.meta.url);
    loaded = { addon: require(file) as NativeAddon, error: null };
  } catch (e) {
    loaded = { addon: null, error: `native addon failed to load: ${String((e as Error).message).split('\n')[0]}` };
  }
  return loaded;
}

export function nativeAvailable(): boolean {
  return loadNative().addon !== null;
}

/** Why the native backend is unavailable, or null when it loaded. */
export function nativeLoadError(): string | null {
  return loadNative().error;
}

export function createNativeBackend(): NativeBackend {
  const { addon, error } = loadNative();
  if (!addon) throw new Error(`native backend unavailable: ${error}`);
  const n = addon;
  return {
    name: 'native',
    dtype: 'f32',
    addon: n,
    alloc: (size: number): FloatArray => new Float32Array(size),
    matmul: (out, x, w, M, K, N, accumulate = false) => n.matmul(out, x, w, M, K, N, accumulate),
    matmulBackwardInput: (dx, dy, w, M, K, N, accumulate = false) => n.matmulBackwardInput(dx, dy, w, M, K, N, accumulate),
    matmulBackwardWeight: (dw, dy, x, M, K, N) => n.matmulBackwardWeight(dw, dy, x, M, K, N),
    embedding: (out, table, tokens, dim) => n.embedding(out, table, tokens, dim),
    embeddingBackward: (dtable, dout, tokens, dim) => n.embeddingBackward(dtable, dout, tokens, dim),
    rmsnorm: (out, rstd, x, w, rows, dim, eps) => n.rmsnorm(out, rstd, x, w, rows, dim, eps),
    rmsnormBackward: (dx, dw, dout, x, w, rstd, rows, dim) => n.rmsnormBackward(dx, dw, dout, x, w, rstd, rows, dim),
    rope: (x, batch, seq, nHeads, t: RopeTable, posOffset = 0) => n.rope(x, batch, seq, nHeads, t.cos, t.sin, t.headDim, t.maxSeqLen, posOffset, 1),
    ropeBackward: (dx, batch, seq, nHeads, t: RopeTable, posOffset = 0) =>
      n.rope(dx, batch, seq, nHeads, t.cos, t.sin, t.headDim, t.maxSeqLen, posOffset, -1),
    attention: (out, lse, q, k, v, s: AttentionShape) => n.attention(out, lse, q, k, v, s.batch, s.seq, s.nHeads, s.nKvHeads, s.headDim),
    attentionCached: (out, q, k, v, rows, pos, H, KV, hd) => n.attentionCached(out, q, k, v, rows, pos, H, KV, hd),
    attentionBackward: (dq, dk, dv, dout, q, k, v, out, lse, s: AttentionShape) =>
      n.attentionBackward(dq, dk, dv, dout, q, k, v, out, lse, s.batch, s.seq, s.nHeads, s.nKvHeads, s.headDim),
    swiglu: (out, a, b, len) => n.swiglu(out, a, b, len),
    swigluBackward: (da, db, dout, a, b, len) => n.swigluBackward(da, db, dout, a, b, len),
    add: (out, a, b, len) => n.add(out, a, b, len),
    crossEntropy: (logits, targets, rows, V, dlogits, gradScale) => n.crossEntropy(logits, targets, rows, V, dlogits, gradScale),
    adamw: (p, g, m, v, len, h: AdamWParams) => n.adamw(p, g, m, v, len, h.lr, h.beta1, h.beta2, h.eps, h.weightDecay, h.step),
    sumSquares: (x, len) => n.sumSquares(x, len),
    scale: (x, s, len) => n.scale(x, s, len),
    threads: () => n.threads(),
    setThreads: (t: number) => n.setThreads(t),
    simd: () => n.simd(),
  };
}
