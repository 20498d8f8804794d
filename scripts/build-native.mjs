#!/usr/bin/env node
// Builds the native backend (native/*.cc -> build/Release/llama_ts_native.node) with node-gyp and the machine's
// C++ compiler. Never fails the install: when the build fails the library falls back to the `ref` backend, and this
// prints a one-line notice saying why. LLAMA_TS_SKIP_NATIVE=1 skips the build; LLAMA_TS_REQUIRE_NATIVE=1 makes a
// failed build fail the install.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const notice = (why) => {
  console.error(`llama-ts: notice: native backend not built (${why}); the slower ref backend will be used`);
  process.exit(process.env.LLAMA_TS_REQUIRE_NATIVE === '1' ? 1 : 0);
};

if (process.env.LLAMA_TS_SKIP_NATIVE === '1') notice('LLAMA_TS_SKIP_NATIVE=1');

function findNodeGyp() {
  const prefix = dirname(dirname(process.execPath));
  const c = [
    process.env.npm_config_node_gyp,
    join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    join(dirname(process.execPath), 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  return c.find((p) => p && existsSync(p));
}

const gyp = findNodeGyp();
if (!gyp) notice('node-gyp not found');
const args = [gyp, 'rebuild'];
// Use the headers installed next to node (no download) unless npm already says where they are.
const prefix = dirname(dirname(process.execPath));
if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);
const quiet = process.env.LLAMA_TS_VERBOSE_BUILD !== '1';
const r = spawnSync(process.execPath, args, { cwd: root, stdio: quiet ? ['ignore', 'pipe', 'pipe'] : 'inherit', encoding: 'utf8' });
if (r.error) notice(`node-gyp could not run: ${r.error.message}`);
if (r.status !== 0) {
  const out = `${r.stdout ?? ''}\n${r.stderr ?? ''}`;
  const lines = out.split('\n').filter((l) => !/gyp info/.test(l));
  // the most telling line: a compiler error, then a node-gyp error, then make's
  const line = lines.find((l) => /\berror:/.test(l)) ?? lines.find((l) => /gyp ERR! stack Error/.test(l)) ??
    lines.find((l) => /error|not found|No such file/i.test(l)) ?? `node-gyp exited with ${r.status}`;
  const why = line.replace(/^gyp ERR! (stack )?/, '').trim().slice(0, 200);
  notice(/^make: .*Error \d+$/.test(why) ? `the C++ compiler failed: ${why}` : why);
}
console.error('llama-ts: native backend built (build/Release/llama_ts_native.node)');
