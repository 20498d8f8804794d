/**
 * The wasm backend in Node: reads the committed modules (wasm/*.wasm, built by wasm/build.mjs), picks the relaxed-SIMD
 * one when this engine validates it (Node 20 only with --experimental-wasm-relaxed-simd), and runs the pool's workers
 * as worker_threads over a shared memory. One backend (one memory, one pool) per process.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { packageRoot } from '../util/addon.js';
import { threadsFromEnv } from '../util/hardware.js';
import { createWasmBackend, wasmSupported, WASM_MAX_THREADS, type WasmBackend, type WasmHost, type WasmWorkerInit } from './wasm.js';

let cached: { backend: WasmBackend | null; error: string | null } | null = null;

/** The module files under the package root: threaded plain SIMD, threaded relaxed SIMD, single-threaded (wasm/build.mjs). */
export function wasmModulePaths(): { plain: string; relaxed: string; single: string } {
  const dir = join(packageRoot(), 'wasm');
  return { plain: join(dir, 'llama_ts.wasm'), relaxed: join(dir, 'llama_ts_relaxed.wasm'), single: join(dir, 'llama_ts_single.wasm') };
}

/**
 * What createWasmBackend needs in Node: the module (relaxed SIMD when this engine validates it, unless `simd128` is
 * asked for, or LLAMA_TS_WASM_SIMD=simd128), `threads` (default LLAMA_TS_THREADS or the CPUs, at most 8) and
 * worker_threads for the pool. Throws when the module is missing or the engine lacks SIMD.
 */
export function nodeWasmHost(opts: { threads?: number; simd?: 'simd128' | 'relaxed-simd' } = {}): WasmHost {
  const paths = wasmModulePaths();
  const read = (f: string): Uint8Array<ArrayBuffer> | null => {
    try {
      return new Uint8Array(readFileSync(f));
    } catch {
      return null;
    }
  };
  const plain = read(paths.plain), relaxed = read(paths.relaxed);
  if (!plain) throw new Error(`wasm module missing (${paths.plain})`);
  if (!wasmSupported(plain)) throw new Error('this engine lacks WebAssembly SIMD or threads');
  const want = opts.simd ?? (process.env.LLAMA_TS_WASM_SIMD === 'simd128' ? 'simd128' : 'relaxed-simd');
  const useRelaxed = want === 'relaxed-simd' && relaxed !== null && WebAssembly.validate(relaxed);
  const module = new WebAssembly.Module(useRelaxed ? relaxed! : plain);
  const fromEnv = opts.threads ?? threadsFromEnv((line) => process.stderr.write(`llama-ts: notice: ${line}\n`));
  const threads = Math.min(WASM_MAX_THREADS, fromEnv ?? availableParallelism());
  const workerFile = new URL('./wasm-worker.js', import.meta.url);
  const spawn = (init: WasmWorkerInit): void => {
    const w = new Worker(workerFile, { workerData: init });
    w.unref(); // parked workers must not keep the process alive
  };
  return { module, simd: useRelaxed ? 'relaxed-simd' : 'simd128', threads, spawn, shared: true };
}

function load(): { backend: WasmBackend | null; error: string | null } {
  if (process.env.LLAMA_TS_NO_WASM === '1') return { backend: null, error: 'disabled by LLAMA_TS_NO_WASM=1' };
  return { backend: createWasmBackend(nodeWasmHost()), error: null };
}

/** The process's wasm backend, or why there is none. Never throws. */
export function loadWasm(): { backend: WasmBackend | null; error: string | null } {
  if (!cached) {
    try {
      cached = load();
    } catch (e) {
      cached = { backend: null, error: `wasm backend failed to start: ${(e as Error).message.split('\n')[0]}` };
    }
  }
  return cached;
}

export function createNodeWasmBackend(): WasmBackend {
  const { backend, error } = loadWasm();
  if (!backend) throw new Error(`wasm backend unavailable: ${error}`);
  return backend;
}
