#!/usr/bin/env node
/**
 * Builds the wasm backend's kernels (wasm/src/*.c) into two modules with clang and wasm-ld (Debian: clang-16, lld-16):
 *   wasm/llama_ts.wasm          128-bit SIMD, threads (shared memory, atomics): every engine since 2021, Node 20 included
 *   wasm/llama_ts_relaxed.wasm  the same with relaxed-SIMD fused multiply-add (Chromium 114+, Node behind a flag)
 *   wasm/llama_ts_single.wasm   128-bit SIMD, one thread, unshared memory (pages that are not cross-origin isolated)
 * and wasm/manifest.json: the hash of the sources and of this script, and the compiler that built them
 * (test/wasm-build.test.ts checks the committed modules against it). The modules are committed and shipped in the
 * npm package, so users need no toolchain. Usage: node wasm/build.mjs [--out DIR] [--cc clang-16] [--ld wasm-ld-16]
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const out = arg('--out', here);
const cc = arg('--cc', process.env.LLAMA_TS_WASM_CC ?? 'clang-16');
const ld = arg('--ld', process.env.LLAMA_TS_WASM_LD ?? 'wasm-ld-16');

/** Pages of 64 KiB the module's imported memory starts with (static data: packing buffers of 8 threads, 1 MiB stack). */
export const INITIAL_PAGES = 160;
const sources = readdirSync(join(here, 'src')).filter((f) => /\.[ch]$/.test(f)).sort();

/** sha256 over this script and the sources, in name order. */
export function sourceHash() {
  const h = createHash('sha256');
  for (const f of ['build.mjs', ...sources.map((s) => join('src', s))]) h.update(f).update('\0').update(readFileSync(join(here, f))).update('\0');
  return h.digest('hex');
}

const CFLAGS = ['--target=wasm32', '-O3', '-msimd128', '-mbulk-memory', '-mmutable-globals', '-mnontrapping-fptoint',
  '-msign-ext', '-nostdlib', '-ffreestanding', '-fno-math-errno', '-Wall', '-Wextra', '-Werror'];
const LDFLAGS = ['--no-entry', '--import-memory', `--initial-memory=${INITIAL_PAGES * 65536}`,
  '--max-memory=4294967296', '-z', 'stack-size=1048576', '--stack-first', '--export=__stack_pointer', '--export=__heap_base',
  '--strip-all'];

const THREADS = { cflags: ['-matomics'], ldflags: ['--shared-memory'] };

function build(name, extra, threads = THREADS) {
  const tmp = join(out, `.obj-${name}`);
  mkdirSync(tmp, { recursive: true });
  const objs = sources.filter((f) => f.endsWith('.c')).map((f) => {
    const o = join(tmp, f.replace(/\.c$/, '.o'));
    execFileSync(cc, [...CFLAGS, ...threads.cflags, ...extra, '-c', join(here, 'src', f), '-o', o], { stdio: 'inherit' });
    return o;
  });
  const file = join(out, `${name}.wasm`);
  execFileSync(ld, [...LDFLAGS, ...threads.ldflags, ...objs, '-o', file], { stdio: 'inherit' });
  execFileSync('rm', ['-rf', tmp]);
  return file;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  mkdirSync(out, { recursive: true });
  build('llama_ts', []);
  build('llama_ts_relaxed', ['-mrelaxed-simd', '-DLT_RELAXED']);
  build('llama_ts_single', ['-DLT_SINGLE'], { cflags: [], ldflags: [] });
  const compiler = execFileSync(cc, ['--version'], { encoding: 'utf8' }).split('\n')[0];
  const manifest = { sources: sourceHash(), compiler, initialPages: INITIAL_PAGES, files: ['llama_ts.wasm', 'llama_ts_relaxed.wasm', 'llama_ts_single.wasm'] };
  writeFileSync(join(out, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  console.log(`wasm: built ${manifest.files.join(', ')} in ${out} (${compiler})`);
}
