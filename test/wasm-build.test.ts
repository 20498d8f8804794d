/**
 * The committed WebAssembly modules are up to date with their sources: the manifest's hash matches wasm/src and
 * wasm/build.mjs, and, where the compiler that built them is installed, rebuilding gives the same bytes. The modules
 * ship in the npm package.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const wasmDir = join(root, 'wasm');
const manifest = JSON.parse(readFileSync(join(wasmDir, 'manifest.json'), 'utf8')) as { sources: string; compiler: string; files: string[] };

function installed(cmd: string): string | null {
  try {
    return execFileSync(cmd, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n')[0];
  } catch {
    return null;
  }
}

test('wasm/manifest.json names the hash of the current sources (run `npm run build:wasm` after changing wasm/src)', async () => {
  const build = (await import(pathToFileURL(join(wasmDir, 'build.mjs')).href)) as { sourceHash(): string };
  assert.equal(manifest.sources, build.sourceHash(), 'wasm/src or wasm/build.mjs changed since the modules were built: run npm run build:wasm');
});

const cc = installed('clang-16');
const sameCompiler = cc !== null && cc === manifest.compiler && installed('wasm-ld-16') !== null;

test('rebuilding the modules from the sources gives the committed bytes', { skip: sameCompiler ? false : `needs ${manifest.compiler} (clang-16, lld-16)` }, () => {
  const out = mkdtempSync(join(tmpdir(), 'lt-wasm-'));
  try {
    execFileSync(process.execPath, [join(wasmDir, 'build.mjs'), '--out', out], { stdio: 'pipe' });
    for (const f of manifest.files) assert.ok(readFileSync(join(out, f)).equals(readFileSync(join(wasmDir, f))), `${f} differs from a fresh build`);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('the modules ship in the npm package', () => {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { files: string[] };
  assert.ok(pkg.files.includes('wasm/'), 'package.json files lists wasm/');
});
