/** Backend selection by name. */
import type { Backend } from './backend.js';
import { createRefBackend } from './ref.js';
import { UserError } from '../util/errors.js';

export type BackendName = 'ref' | 'ref-f64';

export function createBackend(name?: string): Backend {
  switch (name ?? 'ref') {
    case 'ref':
      return createRefBackend('f32');
    case 'ref-f64':
      return createRefBackend('f64');
    default:
      throw new UserError(`unknown backend '${name}' (known: ref, ref-f64)`);
  }
}
