/** A worker thread of the wasm backend's pool in Node (wasm-node.ts starts it): joins the pool and never returns. */
import { workerData } from 'node:worker_threads';
import { runWasmWorker, type WasmWorkerInit } from './wasm.js';

runWasmWorker(workerData as WasmWorkerInit);
