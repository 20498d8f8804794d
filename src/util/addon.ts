/** Finding and loading this package's compiled Node-API addons (build/Release/*.node, built at npm install). */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package's root folder: where package.json and binding.gyp are (this file is dist/src/util/addon.js). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'binding.gyp'))) return dir;
    dir = dirname(dir);
  }
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
}

/** What a loader says when its addon is switched off, was not built, or did not load (its first line follows). */
export interface AddonMessages {
  disabled: string;
  missing: string;
  failed: string;
}

export interface LoadedAddon<T> {
  addon: T | null;
  error: string | null;
}

const loaded = new Map<string, LoadedAddon<unknown>>();

/**
 * Loads build/Release/<file> (or build/Debug) once per process and hands it to `bind` (which may throw, e.g. when
 * the build lacks a function). Never throws: `error` says why there is no addon. `disableVar=1` switches it off.
 * The result is kept per file and `part`: two modules binding different functions of one addon (the kernel ops in
 * kernels/native.ts, the file mapping in util/mmap.ts) name different parts.
 */
export function loadAddon<T>(file: string, disableVar: string, say: AddonMessages, bind: (module: unknown) => T, part = ''): LoadedAddon<T> {
  const key = `${file}#${part}`;
  const cached = loaded.get(key) as LoadedAddon<T> | undefined;
  if (cached) return cached;
  let r: LoadedAddon<T>;
  if (process.env[disableVar] === '1') r = { addon: null, error: say.disabled };
  else {
    const root = packageRoot();
    const path = [join(root, 'build', 'Release', file), join(root, 'build', 'Debug', file)].find((f) => existsSync(f));
    if (!path) r = { addon: null, error: say.missing };
    else {
      try {
        r = { addon: bind(createRequire(import.meta.url)(path)), error: null };
      } catch (e) {
        r = { addon: null, error: `${say.failed}: ${String((e as Error).message).split('\n')[0]}` };
      }
    }
  }
  loaded.set(key, r);
  return r;
}
