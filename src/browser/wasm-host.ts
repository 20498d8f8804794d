/**
 * The wasm backend in a page's worker: fetches the modules beside the bundle, picks relaxed SIMD when the engine
 * validates it, and with cross-origin isolation (a shared memory) runs the pool's workers as module Web Workers
 * (kernel-worker.ts); otherwise the single-threaded module over an ordinary memory.
 */
import { createWasmBackend, WASM_MAX_THREADS, type WasmBackend, type WasmWorkerInit } from '../kernels/wasm.js';
import { UserError } from '../util/errors.js';

async function fetchBytes(url: URL): Promise<ArrayBuffer> {
  const r = await fetch(url);
  if (!r.ok) throw new UserError(`cannot load ${url.pathname} (HTTP ${r.status})`);
  return r.arrayBuffer();
}

export async function createPageWasmBackend(base: URL, threads?: number): Promise<WasmBackend> {
  const shared = typeof SharedArrayBuffer !== 'undefined' && (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true;
  if (!shared) {
    const single = await fetchBytes(new URL('llama_ts_single.wasm', base));
    if (!WebAssembly.validate(single)) throw new UserError('this browser lacks WebAssembly SIMD');
    return createWasmBackend({ module: await WebAssembly.compile(single), simd: 'simd128', threads: 1, shared: false });
  }
  const [plain, relaxed] = await Promise.all([fetchBytes(new URL('llama_ts.wasm', base)), fetchBytes(new URL('llama_ts_relaxed.wasm', base))]);
  if (!WebAssembly.validate(plain)) throw new UserError('this browser lacks WebAssembly SIMD or threads');
  const useRelaxed = WebAssembly.validate(relaxed);
  const module = await WebAssembly.compile(useRelaxed ? relaxed : plain);
  const n = Math.max(1, Math.min(WASM_MAX_THREADS, threads ?? (navigator.hardwareConcurrency || 1)));
  const workerUrl = new URL('./kernel-worker.js', import.meta.url);
  const spawn = (init: WasmWorkerInit): void => {
    new Worker(workerUrl, { type: 'module', name: `kernels-${init.tid}` }).postMessage(init);
  };
  return createWasmBackend({ module, simd: useRelaxed ? 'relaxed-simd' : 'simd128', threads: n, spawn, shared: true });
}
