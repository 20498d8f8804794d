#!/usr/bin/env node
// Builds the native backend (native/*.cc -> build/Release/llama_ts_native.node) with node-gyp and the machine's
// C++ compiler. Never fails the install: when the build fails the library falls back to the `ref` backend, and this
// prints a one-line notice saying why. LLAMA_TS_SKIP_NATIVE=1 skips the build; LLAMA_TS_REQUIRE_NATIVE=1 makes a
// failed build fail the install.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gypRebuild } from './node-gyp.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const notice = (why) => {
  console.error(`llama-ts: notice: native backend not built (${why}); the slower ref backend will be used`);
  process.exit(process.env.LLAMA_TS_REQUIRE_NATIVE === '1' ? 1 : 0);
};

if (process.env.LLAMA_TS_SKIP_NATIVE === '1') notice('LLAMA_TS_SKIP_NATIVE=1');

const failed = gypRebuild(root);
if (failed) notice(failed);
console.error('llama-ts: native backend built (build/Release/llama_ts_native.node)');
