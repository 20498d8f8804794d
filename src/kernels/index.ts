/** Backend choice for the library and the CLI (`--backend native|wasm|ref|ref-f64`). */
import type { Backend } from './backend.js';
import { createRefBackend } from './ref.js';
import { createNativeBackend, loadNative } from './native.js';
import { loadWasm } from './wasm-node.js';
import { UserError } from '../util/errors.js';

export type BackendName = 'native' | 'wasm' | 'ref' | 'ref-f64';
export const BACKEND_NAMES: readonly BackendName[] = ['native', 'wasm', 'ref', 'ref-f64'];

let noticed = false;

/**
 * The backend called `name`. Without a name: `native` when its addon loaded, otherwise `wasm` (the same kernels compiled
 * to WebAssembly, shipped prebuilt), otherwise `ref`, with a one-line notice on stderr saying why (once per process).
 * Asking for `native` or `wasm` when it is unavailable, or for an unknown name, throws a UserError.
 */
export function createBackend(name?: BackendName | (string & {})): Backend {
  if (name === undefined) {
    const { addon, error } = loadNative();
    if (addon) return createNativeBackend();
    const wasm = loadWasm();
    if (!noticed) {
      noticed = true;
      process.stderr.write(wasm.backend
        ? `llama-ts: notice: using the wasm backend: ${error}\n`
        : `llama-ts: notice: using the ref backend (slow): ${error}; wasm: ${wasm.error}\n`);
    }
    return wasm.backend ?? createRefBackend('f32');
  }
  switch (name) {
    case 'native': {
      const { addon, error } = loadNative();
      if (!addon) throw new UserError(`the native backend is unavailable: ${error}`);
      return createNativeBackend();
    }
    case 'wasm': {
      const { backend, error } = loadWasm();
      if (!backend) throw new UserError(`the wasm backend is unavailable: ${error}`);
      return backend;
    }
    case 'ref':
      return createRefBackend('f32');
    case 'ref-f64':
      return createRefBackend('f64');
    default:
      throw new UserError(`unknown backend '${String(name)}' (known: ${BACKEND_NAMES.join(', ')})`);
  }
}

export { createRefBackend } from './ref.js';
export { createNativeBackend, nativeAvailable, nativeLoadError } from './native.js';
export { createNodeWasmBackend, loadWasm } from './wasm-node.js';
