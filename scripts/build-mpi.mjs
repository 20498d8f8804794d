#!/usr/bin/env node
// Builds the optional MPI addon (native/mpi/mpi.cc -> build/Release/llama_ts_mpi.node) when an MPI compiler wrapper
// (mpicc, from libopenmpi-dev) and mpi.h are found; otherwise prints one notice line and leaves the install working
// single-process. Runs after scripts/build-native.mjs (whose `node-gyp rebuild` cleans build/). Never fails the
// install unless LLAMA_TS_REQUIRE_MPI=1; LLAMA_TS_SKIP_MPI=1 (or LLAMA_TS_SKIP_NATIVE=1) skips it; LLAMA_TS_VERBOSE_BUILD=1 shows node-gyp's output.
//   node scripts/build-mpi.mjs --flags compile|link   prints the compiler/linker flags (used by native/mpi/binding.gyp)
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gypRebuild } from './node-gyp.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, 'native', 'mpi');
const MPICC = process.env.MPICC || 'mpicc';

function showme(what) {
  const r = spawnSync(MPICC, [`--showme:${what}`], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return null;
  return r.stdout.trim().split(/\s+/).filter(Boolean);
}

/** { compile, link } flags, or { why } when MPI is not usable for building. */
function probe() {
  const compile = showme('compile');
  if (!compile) return { why: `${MPICC} not found` };
  const link = showme('link');
  if (!link) return { why: `${MPICC} --showme:link failed (not Open MPI's wrapper?)` };
  const incdirs = showme('incdirs') ?? compile.filter((f) => f.startsWith('-I')).map((f) => f.slice(2));
  if (!incdirs.some((d) => existsSync(join(d, 'mpi.h')))) return { why: 'mpi.h not found' };
  const libdirs = showme('libdirs') ?? [];
  // rpath so that an MPI outside the loader's default paths (e.g. /opt/openmpi) is found at load time
  return { compile, link: [...link, ...libdirs.map((d) => `-Wl,-rpath,${d}`)] };
}

if (process.argv[2] === '--flags') {
  const p = probe();
  if (p.why) {
    console.error(`build-mpi: ${p.why}`);
    process.exit(1);
  }
  console.log((process.argv[3] === 'link' ? p.link : p.compile).join(' '));
  process.exit(0);
}

const INSTALL = 'apt-get install openmpi-bin libopenmpi-dev, then npm rebuild';
const notice = (why) => {
  console.error(`llama-ts: notice: MPI addon not built (${why}); multi-process training needs it (${INSTALL})`);
  process.exit(process.env.LLAMA_TS_REQUIRE_MPI === '1' ? 1 : 0);
};

if (process.env.LLAMA_TS_SKIP_MPI === '1') notice('LLAMA_TS_SKIP_MPI=1');
if (process.env.LLAMA_TS_SKIP_NATIVE === '1') notice('LLAMA_TS_SKIP_NATIVE=1');
const p = probe();
if (p.why) notice(p.why);

const failed = gypRebuild(dir);
if (failed) notice(failed);
const out = join(root, 'build', 'Release');
mkdirSync(out, { recursive: true });
copyFileSync(join(dir, 'build', 'Release', 'llama_ts_mpi.node'), join(out, 'llama_ts_mpi.node'));
rmSync(join(dir, 'build'), { recursive: true, force: true }); // keep the source folder (which the package ships) clean
console.error('llama-ts: MPI addon built (build/Release/llama_ts_mpi.node)');
