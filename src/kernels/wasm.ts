/**
 * The `wasm` backend: the kernels of wasm/src/*.c compiled to WebAssembly (128-bit SIMD; relaxed-SIMD FMA in a second
 * module for engines that have it), float32 only. This file runs in Node and in browsers (no Node import): the host
 * hands it a compiled module and, for threads, a way to start workers (wasm-node.ts: worker_threads; web/: Web
 * Workers). Its methods are bound from the op table (ops/table.ts): each call is checked against the op's declared
 * arguments (`checkCall`, as the ref backend), then the op's entry `lt_op_<name>` runs with the table's arguments in
 * order — buffers as pointers into the module's memory (a buffer whose length binds a size followed by that size), the
 * fields of an object argument inline.
 *
 * Memory: with a shared memory (Node; browsers when cross-origin isolated) `alloc` returns views into the module's
 * memory, so the model's buffers reach the kernels without copies, and the memory can grow without detaching them.
 * Any other typed array (tokens, a caller's own Float32Array) is copied in for the call and, when the op writes it,
 * copied back. Without a shared memory (a page that is not cross-origin isolated) `alloc` returns ordinary arrays,
 * every buffer is copied, and the kernels run on one thread.
 *
 * Threads: workers instantiate the same module over the same memory and park in `lt_worker`; a kernel's tasks are
 * claimed by whichever thread is free (wasm/src/pool.c), and each task writes its own part of the output, so results
 * do not depend on the number of threads.
 */
import type { Backend, BackendOps, FloatArray } from './backend.js';
import { NATIVE_OPS, OPS, OP_NAMES, SIGNATURES, type NativeOps, type OpName } from './ops/table.js';
import { checkCall, type Slot } from './ops/signature.js';

/** Pages of 64 KiB the modules' memory starts with (wasm/build.mjs INITIAL_PAGES). */
export const WASM_INITIAL_PAGES = 160;
/** The most threads the kernels use (wasm/src/lt.h LT_MAX_THREADS). */
export const WASM_MAX_THREADS = 8;
/** Bytes of stack each worker instance gets. */
const WORKER_STACK = 256 * 1024;
/** The widest head the attention kernels take (wasm/src/attention.c MAX_HD). */
const MAX_HEAD_DIM = 1024;

/** What a worker needs to join the pool: the module, the shared memory, its thread id and the top of its stack. */
export interface WasmWorkerInit {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  tid: number;
  stackTop: number;
}

export interface WasmHost {
  /** The compiled kernels: the relaxed-SIMD module when the engine validates it, else the plain one. */
  module: WebAssembly.Module;
  /** 'relaxed-simd' or 'simd128': which of the two modules `module` is. */
  simd: string;
  /** Threads in all (the caller and threads − 1 workers); 1 without a shared memory. */
  threads: number;
  /** Starts a worker that calls runWasmWorker(init); needed when threads > 1. */
  spawn?: (init: WasmWorkerInit) => void;
  /** Whether the memory is shared (SharedArrayBuffer available). */
  shared: boolean;
}

export interface WasmBackend extends Backend {
  /** The sgemm of the module (benchmarks). */
  readonly sgemm: NativeOps['sgemm'];
  threads(): number;
  simd(): string;
  /** Bytes of the module's memory. */
  memoryBytes(): number;
}

/** The buffers each op writes (copied back when the caller's array is not in the module's memory). */
const WRITES: Record<OpName | keyof typeof NATIVE_OPS, readonly string[]> = {
  matmul: ['out'], matmulBackwardInput: ['dx'], matmulBackwardWeight: ['dw'], sgemm: ['C'],
  embedding: ['out'], embeddingBackward: ['dtable'],
  rmsnorm: ['out', 'rstd'], rmsnormBackward: ['dx', 'dw'],
  rope: ['x'], ropeBackward: ['x'],
  attention: ['out', 'lse'], attentionCached: ['out'], decodeLayer: ['x', 'xn', 'rstd', 'q', 'k', 'v', 'att', 'h1', 'h3', 'gate', 'kc', 'vc'], attentionCachedF16: ['out', 'kc', 'vc'], attentionBackward: ['dq', 'dk', 'dv'],
  attentionBf16: ['out', 'lse'], attentionBackwardBf16: ['dq', 'dk', 'dv'],
  swiglu: ['out'], swigluBackward: ['da', 'db'], add: ['out'],
  crossEntropy: ['dlogits'], crossEntropyBf16: ['dlogits'], logSumExp: ['out'], softmaxScaled: ['out'],
  adamw: ['p', 'm', 'v'], sumSquares: [], scale: ['x'],
  matmulQ8_0: ['out'], matmulQ4_0: ['out'], matmulQ4_0x8: ['out'], matmulQ8_0x8: ['out'], repackQ4_0x8: ['out'], repackQ8_0x8: ['out'], matmulQ4K: ['out'], matmulQ6K: ['out'], matmulWeightBf16: ['out'], copy: ['dst'], readSum: [], argmax: [],
  toBf16: ['out'], fromBf16: ['out'], matmulBf16: ['out'], matmulBackwardInputBf16: ['dx'], matmulBackwardWeightBf16: ['dw'],
  packBf16: ['out'], packBf16T: ['out'], matmulBf16Packed: ['out'], matmulBackwardInputBf16Packed: ['dx'],
};

/**
 * Ops the module has no kernel for: bound to their plain-TypeScript reference (same checks, same results as the ref
 * backend). Quantized-weight products run here correctly but at reference speed; the native backend has kernels.
 */
const REFERENCE_ONLY: ReadonlySet<string> = new Set<OpName>([
  // the bf16 step's fused and packed ops (--dtype bf16, not offered on wasm: below)
  'crossEntropyBf16', 'packBf16', 'packBf16T', 'matmulBf16Packed', 'matmulBackwardInputBf16Packed',
  'matmulQ8_0', 'matmulQ4_0', 'matmulQ4_0x8', 'matmulQ8_0x8', 'repackQ4_0x8', 'repackQ8_0x8', 'matmulQ4K', 'matmulQ6K', 'matmulWeightBf16',
  // bfloat16 mixed precision is not offered on wasm (bf16: false: --dtype bf16 is refused naming the backend)
  'toBf16', 'fromBf16', 'matmulBf16', 'matmulBackwardInputBf16', 'matmulBackwardWeightBf16', 'attentionBf16', 'attentionBackwardBf16',
  // the F16 KV cache (--kv-cache f16): correct here, at reference speed
  'attentionCachedF16',
  // the fused decode layer: the model calls it on the native backend only (elsewhere its ops one by one)
  'decodeLayer',
]);

/** Checks the kernels make beyond the table's (the references throw the same messages). */
const EXTRA_CHECKS: Partial<Record<OpName, (args: unknown[]) => void>> = {
  embedding: (a) => checkTokens(a[2] as Int32Array, (a[1] as Float32Array).length, a[3] as number, 'embedding'),
  embeddingBackward: (a) => checkTokens(a[2] as Int32Array, (a[0] as Float32Array).length, a[3] as number, 'embeddingBackward'),
  crossEntropy: (a) => {
    const targets = a[1] as Int32Array, rows = a[2] as number, V = a[3] as number;
    for (let r = 0; r < rows; r++) {
      if (targets[r] >= V) throw new RangeError(`crossEntropy: target ${targets[r]} at row ${r} is outside the vocabulary (${V})`);
    }
  },
  attention: (a) => checkHeadDim((a[5] as { headDim: number }).headDim, 'attention'),
  attentionBackward: (a) => checkHeadDim((a[9] as { headDim: number }).headDim, 'attentionBackward'),
  attentionCached: (a) => checkHeadDim(a[8] as number, 'attentionCached'),
};

function checkTokens(tokens: Int32Array, tableLength: number, dim: number, op: string): void {
  const vocab = dim > 0 ? Math.floor(tableLength / dim) : 0;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (t < 0 || t >= vocab) throw new RangeError(`${op}: token id ${t} at position ${i} is outside the vocabulary (0..${vocab - 1})`);
  }
}

function checkHeadDim(hd: number, op: string): void {
  if (hd > MAX_HEAD_DIM) throw new RangeError(`${op}: head dimension ${hd} is more than the wasm kernels take (${MAX_HEAD_DIM})`);
}

const TYPE_NAMES = { f: 'Float32Array', i32: 'Int32Array', f64: 'Float64Array' } as const;
const TYPES = { f: Float32Array, i32: Int32Array, f64: Float64Array } as const;

type Typed = Float32Array | Int32Array | Float64Array;

/**
 * The module's memory: a first-fit free list over [heap base, end of memory), growing the memory when no free range
 * fits. Blocks are 16-byte aligned.
 */
class Heap {
  private free: [number, number][] = [];
  private known = new WeakSet<ArrayBufferLike>();

  constructor(readonly memory: WebAssembly.Memory, base: number) {
    base = Math.ceil(base / 16) * 16;
    this.free.push([base, memory.buffer.byteLength]);
    this.known.add(memory.buffer);
  }

  buffer(): ArrayBufferLike {
    const b = this.memory.buffer;
    this.known.add(b);
    return b;
  }

  /** Whether `a` is a view of this memory. */
  owns(a: Typed): boolean {
    return this.known.has(a.buffer);
  }

  alloc(bytes: number): number {
    const size = Math.max(16, Math.ceil(bytes / 16) * 16);
    for (let i = 0; i < this.free.length; i++) {
      const [s, e] = this.free[i];
      if (e - s >= size) {
        if (e - s === size) this.free.splice(i, 1);
        else this.free[i][0] = s + size;
        return s;
      }
    }
    const end = this.memory.buffer.byteLength;
    const last = this.free.length && this.free[this.free.length - 1][1] === end ? this.free.pop()! : [end, end];
    const pages = Math.ceil((last[0] + size - end) / 65536);
    if (end / 65536 + pages > 65536) throw new RangeError(`wasm backend: out of memory (${bytes} more bytes past ${end})`);
    this.memory.grow(pages);
    this.buffer();
    const newEnd = end + pages * 65536;
    if (last[0] + size < newEnd) this.free.push([last[0] + size, newEnd]);
    return last[0];
  }

  release(ptr: number, bytes: number): void {
    const size = Math.max(16, Math.ceil(bytes / 16) * 16);
    let i = 0;
    while (i < this.free.length && this.free[i][0] < ptr) i++;
    this.free.splice(i, 0, [ptr, ptr + size]);
    // coalesce with the neighbours
    if (i + 1 < this.free.length && this.free[i][1] === this.free[i + 1][0]) {
      this.free[i][1] = this.free[i + 1][1];
      this.free.splice(i + 1, 1);
    }
    if (i > 0 && this.free[i - 1][1] === this.free[i][0]) {
      this.free[i - 1][1] = this.free[i][1];
      this.free.splice(i, 1);
    }
  }
}

interface Exports {
  __heap_base: WebAssembly.Global;
  __stack_pointer: WebAssembly.Global;
  lt_set_threads(n: number): number;
  lt_worker(tid: number): void;
  [op: string]: unknown;
}

/** A worker's body (Node worker_threads or a Web Worker): joins the pool; never returns. */
export function runWasmWorker(init: WasmWorkerInit): void {
  const instance = new WebAssembly.Instance(init.module, { env: { memory: init.memory } });
  const ex = instance.exports as unknown as Exports;
  ex.__stack_pointer.value = init.stackTop;
  ex.lt_worker(init.tid);
}

/** Whether this engine has WebAssembly SIMD with threads (the plain module validates). */
export function wasmSupported(plain: BufferSource): boolean {
  return typeof WebAssembly === 'object' && WebAssembly.validate(plain);
}

export function createWasmBackend(host: WasmHost): WasmBackend {
  const shared = host.shared;
  const memory = new WebAssembly.Memory({ initial: WASM_INITIAL_PAGES, maximum: 65536, shared } as WebAssembly.MemoryDescriptor);
  const instance = new WebAssembly.Instance(host.module, { env: { memory } });
  const ex = instance.exports as unknown as Exports;
  const heap = new Heap(memory, ex.__heap_base.value as number);
  const threads = shared && host.spawn ? Math.max(1, Math.min(WASM_MAX_THREADS, host.threads)) : 1;
  for (let tid = 1; tid < threads; tid++) {
    const stack = heap.alloc(WORKER_STACK);
    host.spawn!({ module: host.module, memory, tid, stackTop: stack + WORKER_STACK });
  }
  ex.lt_set_threads(threads);

  // blocks handed out by alloc go back to the heap when their array is collected: a caller keeps the array alloc
  // returned (not only a subarray of it) while it uses the block, as the model, optimizer and decoder do
  const blocks = new FinalizationRegistry<[number, number]>(([ptr, bytes]) => heap.release(ptr, bytes));
  const alloc = (n: number): FloatArray => {
    if (!shared) return new Float32Array(n);
    const bytes = n * 4;
    const ptr = heap.alloc(bytes);
    const a = new Float32Array(heap.buffer(), ptr, n);
    a.fill(0); // a block may be reused
    blocks.register(a, [ptr, bytes]);
    return a;
  };
  // the rope tables (Float64Array, never written) are copied once per table
  const f64Copies = new WeakMap<Float64Array, number>();
  const f64Blocks = new FinalizationRegistry<[number, number]>(([ptr, bytes]) => heap.release(ptr, bytes));

  const bindOp = (name: OpName | keyof typeof NATIVE_OPS): ((...args: unknown[]) => unknown) => {
    const sig = SIGNATURES[name];
    if (REFERENCE_ONLY.has(name)) {
      const ref = OPS[name as OpName].ref as (...a: unknown[]) => unknown;
      return (...args: unknown[]): unknown => {
        checkCall(sig, args);
        return ref(...args);
      };
    }
    const entry = ex[`lt_op_${name}`] as (...a: number[]) => number;
    if (typeof entry !== 'function') throw new Error(`wasm backend: the module has no entry for op ${name} (rebuild: node wasm/build.mjs)`);
    const writes = new Set(WRITES[name]);
    const extra = EXTRA_CHECKS[name as OpName];
    const slots = sig.slots;
    const value = (s: Slot, args: unknown[]): unknown => (s.field === null ? args[s.arg] : (args[s.arg] as Record<string, unknown>)[s.field]);
    return (...args: unknown[]): unknown => {
      checkCall(sig, args);
      for (const s of slots) {
        if (s.kind !== 'f' && s.kind !== 'i32' && s.kind !== 'f64') continue;
        const a = value(s, args);
        if (a !== null && !(a instanceof TYPES[s.kind])) throw new TypeError(`${name}: ${s.name} must be a ${TYPE_NAMES[s.kind]}`);
      }
      extra?.(args);
      // buffers outside the memory: one block each (the same array named twice shares it), copied in
      const copies = new Map<Typed, number>();
      const ptrs = new Map<Slot, number>();
      for (const s of slots) {
        if (s.kind !== 'f' && s.kind !== 'i32' && s.kind !== 'f64') continue;
        const a = value(s, args) as Typed | null;
        if (a === null) ptrs.set(s, 0);
        else if (shared && heap.owns(a)) ptrs.set(s, a.byteOffset);
        else if (a instanceof Float64Array && !writes.has(s.name)) {
          let p = f64Copies.get(a);
          if (p === undefined) {
            p = heap.alloc(a.byteLength);
            new Float64Array(heap.buffer(), p, a.length).set(a);
            f64Copies.set(a, p);
            f64Blocks.register(a, [p, a.byteLength]);
          }
          ptrs.set(s, p);
        } else {
          let p = copies.get(a);
          if (p === undefined) {
            p = heap.alloc(a.byteLength);
            copies.set(a, p);
          }
          ptrs.set(s, p);
        }
      }
      try {
        const buf = heap.buffer(); // after every allocation of this call (an unshared memory detaches on growth)
        for (const [a, p] of copies) new (a.constructor as typeof Float32Array)(buf, p, a.length).set(a as Float32Array);
        const flat: number[] = [];
        for (const s of slots) {
          if (s.kind === 'int' || s.kind === 'bool') flat.push(Number(value(s, args) ?? 0));
          else if (s.kind === 'num') flat.push(value(s, args) as number);
          else {
            flat.push(ptrs.get(s)!);
            if (s.bind >= 0) flat.push((value(s, args) as Typed | null)?.length ?? 0);
          }
        }
        const r = entry(...flat);
        if (copies.size) {
          const out = heap.buffer();
          for (const s of slots) {
            if (!writes.has(s.name)) continue;
            const a = value(s, args) as Typed | null;
            const p = a ? copies.get(a) : undefined;
            if (a && p !== undefined) (a as Float32Array).set(new Float32Array(out, p, a.length));
          }
        }
        return sig.returns === 'num' ? r : undefined;
      } finally {
        for (const [a, p] of copies) heap.release(p, a.byteLength);
      }
    };
  };

  const ops = Object.fromEntries(OP_NAMES.map((name) => [name, bindOp(name)])) as unknown as BackendOps;
  return {
    ...ops,
    name: 'wasm',
    dtype: 'f32',
    bf16: false,
    alloc,
    sgemm: bindOp('sgemm') as unknown as NativeOps['sgemm'],
    threads: () => threads,
    simd: () => host.simd,
    memoryBytes: () => memory.buffer.byteLength,
  };
}
