/**
 * Two "hosts" on one machine for tests: two network namespaces joined by a veth pair, 10.77.0.1/24 in the first and
 * 10.77.0.2/24 in the second (the addresses exist only inside those namespaces), and an rsh agent for mpirun that
 * "logs in" to a host by running the command in that host's namespace with a clean environment (as ssh would: only
 * what mpirun forwards with -x reaches the remote ranks). mpirun itself runs in the first namespace.
 *
 * Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and iproute2. Everything is named after this process's pid, and
 * `close()` (idempotent; also run at process exit) kills whatever still runs in the namespaces and deletes them, which
 * deletes the veth pair too. Namespaces left by an earlier test process that was killed are removed at the next setup.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const NETNS_SUBNET = '10.77.0.0/24';
export const NETNS_HOSTS = ['10.77.0.1', '10.77.0.2'] as const;

const PREFIX = 'llts-test-';

function ip(args: string[]): SpawnSyncReturns<string> {
  return spawnSync('ip', args, { encoding: 'utf8', timeout: 20_000 });
}

function must(args: string[]): void {
  const r = ip(args);
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${(r.stderr || r.error?.message || '').trim()}`);
}

/** false, or why namespaces cannot be used here, from the things that can be checked without creating one. */
export function netnsPrecheck(): false | string {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'needs root (ip netns add, veth pairs)';
  const v = ip(['-V']);
  if (v.error || v.status !== 0) return "'ip' not found (apt-get install iproute2)";
  return false;
}

export interface TwoHosts {
  /** Namespace names of host 0 (runs mpirun) and host 1. */
  ns: [string, string];
  /** veth end names, in ns[0] and ns[1]. */
  veth: [string, string];
  /** The rsh agent script to pass as --mca plm_rsh_agent. */
  agent: string;
  /** Each line the agent was called with (one per remote launch). */
  agentLog: string;
  /** rx/tx bytes of host `i`'s veth end so far. */
  bytes(i: 0 | 1): { rx: number; tx: number };
  /** Runs `cmd` in host 0's namespace (where mpirun runs), killing it after `timeoutMs`. */
  exec(cmd: string[], opts: { cwd: string; timeoutMs: number }): SpawnSyncReturns<string>;
  close(): void;
}

/** Removes namespaces whose creating process no longer runs (a killed earlier test run). */
function removeStale(): void {
  const list = ip(['netns', 'list']).stdout ?? '';
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0];
    const m = new RegExp(`^${PREFIX}(\\d+)-[ab]$`).exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch {
      alive = false;
    }
    if (!alive) killAndDelete(name);
  }
}

function killAndDelete(name: string): void {
  const pids = (ip(['netns', 'pids', name]).stdout ?? '').split('\n').map(Number).filter((p) => p > 0 && p !== process.pid);
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  ip(['netns', 'del', name]);
}

/**
 * Creates the two hosts. Returns `{ skip }` when the system does not allow namespaces or veth pairs (a container
 * without CAP_SYS_ADMIN, no veth driver); any later failure throws (after cleaning up).
 */
export function twoHosts(): TwoHosts | { skip: string } {
  const pre = netnsPrecheck();
  if (pre) return { skip: pre };
  removeStale();
  const ns: [string, string] = [`${PREFIX}${process.pid}-a`, `${PREFIX}${process.pid}-b`];
  const veth: [string, string] = [`llts${process.pid}a`, `llts${process.pid}b`]; // ≤ 15 characters
  const dir = mkdtempSync(join(tmpdir(), 'llama-ts-netns-'));
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    for (const n of ns) killAndDelete(n);
    ip(['link', 'del', veth[0]]); // only if it never moved into its namespace
    rmSync(dir, { recursive: true, force: true });
    process.off('exit', close);
  };
  process.on('exit', close);

  const first = ip(['netns', 'add', ns[0]]);
  if (first.status !== 0) {
    close();
    return { skip: `'ip netns add' is not permitted here: ${(first.stderr || first.error?.message || '').trim()}` };
  }
  const pair = (() => {
    const r = ip(['netns', 'add', ns[1]]);
    if (r.status !== 0) return r;
    return ip(['link', 'add', veth[0], 'type', 'veth', 'peer', 'name', veth[1]]);
  })();
  if (pair.status !== 0) {
    close();
    return { skip: `cannot create a second namespace and a veth pair here: ${(pair.stderr || '').trim()}` };
  }
  try {
    for (const i of [0, 1] as const) {
      must(['link', 'set', veth[i], 'netns', ns[i]]);
      must(['-n', ns[i], 'addr', 'add', `${NETNS_HOSTS[i]}/24`, 'dev', veth[i]]);
      must(['-n', ns[i], 'link', 'set', 'lo', 'up']);
      must(['-n', ns[i], 'link', 'set', veth[i], 'up']);
    }
  } catch (e) {
    close();
    throw e;
  }

  const agent = join(dir, 'rsh-agent.sh');
  const agentLog = join(dir, 'agent.log');
  // mpirun calls `<agent> [options] HOST COMMAND...`; the host is the first argument that names one of ours.
  writeFileSync(agent, `#!/bin/sh
echo "$*" >> '${agentLog}'
while [ $# -gt 0 ]; do
  case "$1" in
    ${NETNS_HOSTS[0]}) ns='${ns[0]}'; shift; break ;;
    ${NETNS_HOSTS[1]}) ns='${ns[1]}'; shift; break ;;
    *) shift ;;
  esac
done
[ -n "$ns" ] || { echo "rsh-agent: no known host in: $*" >&2; exit 255; }
exec ip netns exec "$ns" env -i PATH="$PATH" HOME="$HOME" sh -c "$*"
`);
  chmodSync(agent, 0o755);

  const bytes = (i: 0 | 1) => {
    const r = ip(['-j', '-s', '-n', ns[i], 'link', 'show', 'dev', veth[i]]);
    if (r.status !== 0) throw new Error(`ip -s link (${ns[i]}): ${r.stderr}`);
    const s = (JSON.parse(r.stdout) as { stats64: { rx: { bytes: number }; tx: { bytes: number } } }[])[0].stats64;
    return { rx: s.rx.bytes, tx: s.tx.bytes };
  };
  const exec = (cmd: string[], opts: { cwd: string; timeoutMs: number }) =>
    spawnSync('ip', ['netns', 'exec', ns[0], ...cmd], { encoding: 'utf8', cwd: opts.cwd, timeout: opts.timeoutMs, killSignal: 'SIGKILL' });
  return { ns, veth, agent, agentLog, bytes, exec, close };
}
