/** Finding and loading this package's compiled Node-API addons (build/Release/*.node, built at npm install). */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package's root folder: where package.json and binding.gyp are (this file is dist/src/util/addon.js). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'binding.gyp'))) return dir;
    dir = dirname(dir);
  }
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
}

/**
 * Loads build/Release/<file> (or build/Debug). Never throws: `missing` when it was not built, `error` (the first
 * line of the loader's message) when it exists but does not load.
 */
export function requireAddon(file: string): { module: unknown; missing?: undefined; error?: undefined } | { module: null; missing: boolean; error?: string } {
  const root = packageRoot();
  const path = [join(root, 'build', 'Release', file), join(root, 'build', 'Debug', file)].find((f) => existsSync(f));
  if (!path) return { module: null, missing: true };
  try {
    return { module: createRequire(import.meta.url)(path) };
  } catch (e) {
    return { module: null, missing: false, error: String((e as Error).message).split('\n')[0] };
  }
}
