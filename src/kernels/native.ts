/**
 * The `native` backend: the C++ addon in native/ (Node-API, built by node-gyp at `npm install`), float32 only.
 * Its kernel functions are bound from the op table (ops/table.ts): for each op the addon's `op(name, signature)`
 * returns a function that checks every call against the op's declared arguments — buffer types and lengths, sizes,
 * conditions — and throws a descriptive RangeError/TypeError instead of touching memory it does not own; only then
 * does the op's C++ entry (native/ops/*.cc) run, with the typed arrays passed by pointer, without copies. Those
 * functions are the backend's methods as they are: no JavaScript wrapper per op.
 */
import { loadAddon, type LoadedAddon } from '../util/addon.js';
import type { Backend, BackendOps, FloatArray } from './backend.js';
import { NATIVE_OPS, OP_NAMES, SIGNATURES, type NativeOps } from './ops/table.js';
import { encodeSignature } from './ops/signature.js';
import { threadsFromEnv } from '../util/hardware.js';

/** The module the addon exports (native/addon.cc). */
interface RawAddon {
  /** The checked function of the op `name`, which the addon has an entry for, under `signature` (encodeSignature). */
  op(name: string, signature: string): (...args: unknown[]) => unknown;
  threads(): number;
  setThreads(n: number): number;
  simd(): string;
  simdDetected(): string;
  setSimd(level: 'generic' | 'avx2' | 'avx512' | 'default'): string;
  /** bf16 GEMM path in use / the best this CPU has: 'avx512bf16' (vdpbf16ps) | 'convert' (to float32, then SGEMM). */
  bf16Path(): string;
  bf16Detected(): string;
  /** Forces a bf16 path (clamped to the CPU; LLAMA_TS_BF16=convert does the same at start). Returns the path in use. */
  setBf16Path(path: 'avx512bf16' | 'convert' | 'default'): string;
  /**
   * madvise(MADV_HUGEPAGE) over the whole 2 MiB pages inside `a` (native/mmap.cc); the bytes advised, 0 where the
   * kernel refuses. Absent from addons built before it.
   */
  adviseHugePages?(a: Float32Array | Uint16Array): number;
  /**
   * The elements to skip from `a`'s start for its data to begin on an `align`-byte boundary (native/mmap.cc). Absent
   * from addons built before it.
   */
  alignSkip?(a: ArrayBufferView, align: number): number;
  /** Whether the CPU reports AMX-BF16 (no AMX kernel yet: such a CPU runs the avx512bf16 path). */
  amxBf16(): boolean;
}

/** The addon's functions: every op of the table, the native-only ops (sgemm), the pool and the SIMD path. */
export type NativeAddon = BackendOps & NativeOps & Omit<RawAddon, 'op'>;

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
/** Buffers of at least this many floats (4 MiB; allocBf16: the same bytes) are advised onto huge pages by the native backend's alloc. */
const HUGE_MIN_FLOATS = 1 << 20;
/**
 * Buffers of at least this many elements start on a 64-byte boundary (a cache line, one AVX-512 vector): V8 backs a
 * large typed array with glibc's allocation, 16 bytes past a page boundary, so without this every 64-byte load of a
 * weight row straddles two cache lines. Batch-1 decode of mini-15m (F32, one thread, Zen4 EPYC) gained 6% from it.
 */
const ALIGN_MIN_ELEMENTS = 1024;
const ALIGN_BYTES = 64;

/** A zeroed array of `size` elements whose data starts on an ALIGN_BYTES boundary (a view into a slightly larger buffer). */
function alignedArray<T extends Float32Array | Uint16Array>(make: (n: number) => T, bytesPer: number, size: number, skipOf?: (a: ArrayBufferView, align: number) => number): T {
  if (size < ALIGN_MIN_ELEMENTS || !skipOf) return make(size);
  const raw = make(size + ALIGN_BYTES / bytesPer);
  const skip = skipOf(raw, ALIGN_BYTES);
  return raw.subarray(skip, skip + size) as T;
}

/** Loads build/Release/llama_ts_native.node once. Never throws: returns why it could not. */
export function loadNative(): LoadedAddon<NativeAddon> {
  return loadAddon(ADDON_FILE, 'LLAMA_TS_NO_NATIVE', {
    disabled: 'disabled by LLAMA_TS_NO_NATIVE=1',
    missing: `native addon not built (no build/Release/${ADDON_FILE}; run 'npm install' with a C++ compiler, or 'npm run build:native')`,
    failed: 'native addon failed to load',
  }, (m) => bind(m as RawAddon)); // bind throws when the build lacks an op
}

/** The addon's functions, each op bound to its signature from the table. Throws when the addon lacks an op. */
function bind(raw: RawAddon): NativeAddon {
  const addon: Record<string, unknown> = {
    threads: raw.threads, setThreads: raw.setThreads, simd: raw.simd, simdDetected: raw.simdDetected, setSimd: raw.setSimd,
    bf16Path: raw.bf16Path, bf16Detected: raw.bf16Detected, setBf16Path: raw.setBf16Path, amxBf16: raw.amxBf16,
    adviseHugePages: raw.adviseHugePages, alignSkip: raw.alignSkip,
  };
  for (const name of [...OP_NAMES, ...(Object.keys(NATIVE_OPS) as (keyof typeof NATIVE_OPS)[])]) {
    addon[name] = raw.op(name, encodeSignature(SIGNATURES[name]));
  }
  return addon as NativeAddon;
}

export function nativeAvailable(): boolean {
  return loadNative().addon !== null;
}

/** Why the native backend is unavailable, or null when it loaded. */
export function nativeLoadError(): string | null {
  return loadNative().error;
}

let threadsChecked = false;

/**
 * Checks LLAMA_TS_THREADS once, before the pool starts: not a positive integer → a one-line UserError; more than
 * the machine can use → clamped (the addon's pool reads the variable when it starts), with a one-line notice.
 */
function checkThreadsEnv(): void {
  if (threadsChecked) return;
  const n = threadsFromEnv((line) => process.stderr.write(`llama-ts: notice: ${line}\n`));
  threadsChecked = true;
  if (n !== undefined && String(n) !== process.env.LLAMA_TS_THREADS) process.env.LLAMA_TS_THREADS = String(n);
}

export function createNativeBackend(): NativeBackend {
  const { addon, error } = loadNative();
  if (!addon) throw new Error(`native backend unavailable: ${error}`);
  checkThreadsEnv();
  const ops = Object.fromEntries(OP_NAMES.map((name) => [name, addon[name]])) as BackendOps;
  return {
    ...ops,
    name: 'native',
    dtype: 'f32',
    bf16: true,
    addon,
    alloc: (size: number): FloatArray => {
      const a = alignedArray((n) => new Float32Array(n), 4, size, addon.alignSkip);
      // Large buffers (weights, gradients, moments, KV caches, activations) are advised onto transparent huge pages
      // before their first write: a batch-1 decode streams every weight once per token, and with 4 KiB pages the
      // TLB misses cost a measurable part of the memory bandwidth (bench/generate.ts; docs/INFERENCE.md).
      if (size >= HUGE_MIN_FLOATS) addon.adviseHugePages?.(a);
      return a;
    },
    // the bf16 copies of the weights and activations (--dtype bf16), advised the same way: the head's products
    // stream its weight and the logits' gradient (tens of MB) through the TLB as the float32 ones do
    allocBf16: (size: number): Uint16Array => {
      const a = alignedArray((n) => new Uint16Array(n), 2, size, addon.alignSkip);
      if (size >= 2 * HUGE_MIN_FLOATS) addon.adviseHugePages?.(a);
      return a;
    },
    threads: () => addon.threads(),
    setThreads: (t: number) => addon.setThreads(t),
    simd: () => addon.simd(),
  };
}
