#!/usr/bin/env node
// Runs the CLI bundled by `npm run build` (dist/cli/main.cjs: one file instead of ~100 modules, a faster start) when
// it is there: always in an installed package (under node_modules), in a checkout only while it is not older than
// the compiled sources (a later `tsc` alone leaves it stale: then dist/src runs). Else, and for the bare usage
// (`llama-ts`, `llama-ts --help`), the compiled modules.
//
// The bundle is compiled with a V8 code cache, one per command, kept in LLAMA_TS_CACHE_DIR (default
// $XDG_CACHE_HOME/llama-ts or ~/.cache/llama-ts; LLAMA_TS_CODE_CACHE=0 turns it off): a command's first successful
// run writes the bytecode of every function it ran, later runs start from it (~20 ms less for `generate`). V8 itself
// refuses a cache of another Node version, V8 flags or source; the file name also carries the bundle's size and time.
// Any failure to read or write it only means compiling as without it.
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';

const bundle = fileURLToPath(new URL('../dist/cli/main.cjs', import.meta.url));
const compiled = new URL('../dist/src/cli/main.js', import.meta.url);
const b = statSync(bundle, { throwIfNoEntry: false });
const c = b && !import.meta.url.includes('/node_modules/') ? statSync(compiled, { throwIfNoEntry: false }) : undefined;
const argv = process.argv.slice(2);
// the bare usage (no command) needs only main's command table: the compiled module, two small files, loads faster
const usage = argv.length === 0 || ['--help', '-h', 'help'].includes(argv[0]);
const { main } = b && !usage && (!c || b.mtimeMs >= c.mtimeMs) ? runCached(bundle, b) : await import(compiled.href);
main(argv).then((code) => { process.exitCode = code; });

/** Runs a CommonJS file as require() would, compiled from (or into) this command's code cache; returns its exports. */
function runCached(file, st) {
  const source = readFileSync(file, 'utf8');
  const cache = cacheFile(st);
  let cachedData;
  if (cache) {
    try {
      cachedData = readFileSync(cache.path);
    } catch {
      cachedData = undefined;
    }
  }
  // no import() in the bundle (scripts/bundle-cli.mjs turns them into require()): a script compiled from a code cache
  // has no dynamic-import callback in Node 20
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, { filename: file, cachedData });
  if (cache && (!cachedData || script.cachedDataRejected)) {
    // after the run, so that the cache holds every function the command compiled; only after a clean one
    process.once('exit', (code) => {
      if (code === 0) writeCache(cache, script);
    });
  }
  const module = { exports: {} };
  script.runInThisContext()(module.exports, createRequire(file), module, file, dirname(file));
  return module.exports;
}

function cacheFile(st) {
  if (process.env.LLAMA_TS_CODE_CACHE === '0') return null;
  let home;
  try {
    home = homedir();
  } catch {
    home = ''; // no home directory (a service account): only LLAMA_TS_CACHE_DIR or XDG_CACHE_HOME can give one
  }
  const root = process.env.XDG_CACHE_HOME || (home ? join(home, '.cache') : '');
  const base = process.env.LLAMA_TS_CACHE_DIR || (root ? join(root, 'llama-ts') : '');
  if (!base) return null;
  const dir = join(base, `code-${process.version}-${process.arch}`);
  const command = /^[a-z]{1,16}$/.test(argv[0] ?? '') ? argv[0] : 'other';
  const prefix = `${command}-`;
  return { dir, prefix, path: join(dir, `${prefix}${st.size}-${Math.round(st.mtimeMs)}.bin`) };
}

function writeCache(cache, script) {
  try {
    mkdirSync(cache.dir, { recursive: true });
    for (const f of readdirSync(cache.dir)) if (f.startsWith(cache.prefix)) rmSync(join(cache.dir, f), { force: true }); // an older bundle's
    const tmp = `${cache.path}.${process.pid}.tmp`;
    writeFileSync(tmp, script.createCachedData());
    renameSync(tmp, cache.path);
  } catch {
    // a read-only or full disk: the next run compiles without a cache
  }
}
