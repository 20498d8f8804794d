// Runs `node-gyp rebuild` in a folder with the node-gyp bundled with npm and the headers installed next to node (no
// download), for scripts/build-native.mjs and scripts/build-mpi.mjs. Returns null on success, else the most telling
// line of the failure (a compiler error, then a node-gyp error, then make's).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

function findNodeGyp() {
  const prefix = dirname(dirname(process.execPath));
  const c = [
    process.env.npm_config_node_gyp,
    join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    join(dirname(process.execPath), 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  return c.find((p) => p && existsSync(p));
}

export function gypRebuild(cwd) {
  const gyp = findNodeGyp();
  if (!gyp) return 'node-gyp not found';
  const args = [gyp, 'rebuild'];
  // Use the headers installed next to node (no download) unless npm already says where they are.
  const prefix = dirname(dirname(process.execPath));
  if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);
  const quiet = process.env.LLAMA_TS_VERBOSE_BUILD !== '1';
  const r = spawnSync(process.execPath, args, { cwd, stdio: quiet ? ['ignore', 'pipe', 'pipe'] : 'inherit', encoding: 'utf8' });
  if (r.error) return `node-gyp could not run: ${r.error.message}`;
  if (r.status === 0) return null;
  const lines = `${r.stdout ?? ''}\n${r.stderr ?? ''}`.split('\n').filter((l) => !/gyp info/.test(l));
  const line = lines.find((l) => /\berror:/.test(l)) ?? lines.find((l) => /gyp ERR! stack Error/.test(l)) ??
    lines.find((l) => /error|not found|No such file/i.test(l)) ?? `node-gyp exited with ${r.status}`;
  const why = line.replace(/^gyp ERR! (stack )?/, '').trim().slice(0, 200);
  return /^make: .*Error \d+$/.test(why) ? `the C++ compiler failed: ${why}` : why;
}
