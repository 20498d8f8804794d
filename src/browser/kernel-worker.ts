/** A Web Worker of the wasm backend's pool (wasm-host.ts starts it): joins the pool on its first message, never returns. */
import { runWasmWorker, type WasmWorkerInit } from '../kernels/wasm.js';

self.onmessage = (e: MessageEvent<WasmWorkerInit>) => runWasmWorker(e.data);
