#!/usr/bin/env node
/**
 * Bundles the compiled CLI (dist/src/cli/main.js and everything it imports from dist/src) with esbuild into one
 * CommonJS file, dist/cli/main.cjs. bin/llama-ts.js runs it when it is there and not older than the compiled CLI,
 * compiled with a V8 code cache (one per command, see bin/llama-ts.js): one file instead of ~100 modules (Node's ES
 * module loader resolves, reads and links each module separately, tens of milliseconds of every start), and CommonJS
 * because Node 20 caches compiled code only for scripts (vm.Script's cachedData), not for ES modules. V8 compiles
 * functions when first called, so a command still compiles only what it runs.
 *
 * Each module's `import.meta.url` is rewritten to the URL its compiled file has in dist/src, so paths built from it
 * (the native addon, worker files, data/, resources/, the dashboard's web files) resolve as they do unbundled; npm
 * packages stay imports (resolved from dist/ as before). Run after tsc: `npm run build` does both.
 * Usage: node scripts/bundle-cli.mjs [--out DIR] [--minify]
 */
import { readFile } from 'node:fs/promises';
import { existsSync, rmSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const i = process.argv.indexOf('--out');
const outdir = i > 0 ? process.argv[i + 1] : join(root, 'dist', 'cli');
const entry = join(root, 'dist', 'src', 'cli', 'main.js');
if (!existsSync(entry)) {
  console.error('bundle-cli: dist/src/cli/main.js is missing: run tsc first (npm run build)');
  process.exit(1);
}
let build;
try {
  ({ build } = await import('esbuild'));
} catch {
  // esbuild is a dev dependency: without it the CLI runs unbundled from dist/src (slower start, same behaviour)
  console.error('bundle-cli: esbuild is not installed; the CLI will run unbundled from dist/src');
  process.exit(0);
}
const srcDir = join(root, 'dist', 'src');
rmSync(outdir, { recursive: true, force: true });
const result = await build({
  entryPoints: { main: entry }, absWorkingDir: root, outdir, bundle: true, format: 'cjs', platform: 'node', target: 'node20',
  // import() becomes require() (of node: modules and CommonJS packages): a script compiled from V8's code cache has no
  // dynamic-import callback in Node 20 (ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING), whatever vm.Script was given
  supported: { 'dynamic-import': false },
  outExtension: { '.js': '.cjs' }, packages: 'external', minifyWhitespace: process.argv.includes('--minify'), minifySyntax: process.argv.includes('--minify'),
  // the base for the rewritten import.meta.url: this file's own URL (CommonJS has __filename, not import.meta)
  banner: { js: 'const __bundleUrl = require("node:url").pathToFileURL(__filename).href;' },
  logLevel: 'warning', metafile: true,
  plugins: [{
    name: 'import-meta-url',
    setup(b) {
      b.onLoad({ filter: /\.js$/ }, async (a) => {
        const src = await readFile(a.path, 'utf8');
        if (relative(srcDir, a.path).startsWith('..') || !src.includes('import.meta.url')) return { contents: src, loader: 'js' };
        const rel = relative(outdir, a.path).split('\\').join('/');
        return { contents: src.replaceAll('import.meta.url', `new URL(${JSON.stringify(rel)}, __bundleUrl).href`), loader: 'js' };
      });
    },
  }],
});
const outs = Object.values(result.metafile.outputs);
console.log(`bundle-cli: ${Object.keys(result.metafile.inputs).length} modules into ${outs.length} files, ${(outs.reduce((a, o) => a + o.bytes, 0) / 1e3).toFixed(0)} kB in ${relative(root, outdir)}/`);
