/** Backend choice for the library and the CLI (`--backend native|ref|ref-f64`). */
import type { Backend } from './backend.js';
import { createRefBackend } from './ref.js';
import { createNativeBackend, loadNative } from './native.js';
import { UserError } from '../util/errors.js';

export type BackendName = 'native' | 'ref' | 'ref-f64';
export const BACKEND_NAMES: readonly BackendName[] = ['native', 'ref', 'ref-f64'];

let noticed = false;

/**
 * The backend called `name`. Without a name: `native` when its addon loaded, otherwise `ref` with a one-line notice
 * on stderr saying why (once per process). Asking for `native` when it is unavailable, or for an unknown name, throws a
 * UserError.
 */
export function createBackend(name?: BackendName | (string & {})): Backend {
  if (name === undefined) {
    const { addon, error } = loadNative();
    if (addon) return createNativeBackend();
    if (!noticed) {
      noticed = true;
      process.stderr.write(`llama-ts: notice: using the ref backend (slow): ${error}\n`);
    }
    return createRefBackend('f32');
  }
  switch (name) {
    case 'native': {
      const { addon, error } = loadNative();
      if (!addon) throw new UserError(`the native backend is unavailable: ${error}`);
      return createNativeBackend();
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
