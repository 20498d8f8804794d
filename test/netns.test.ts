/**
 * Two ranks on two "hosts": network namespaces joined by a veth pair (test/helpers/netns.ts), with mpirun in the first
 * launching the second rank through an rsh agent, as it would over ssh. MPI's TCP transport (out-of-band and BTL,
 * both restricted to 10.77.0.0/24, the only addresses on the veth) crosses a real link between two network stacks
 * rather than loopback, and only the variables forwarded with -x reach the remote rank.
 * Checks: DP2 and TP2+SP training across the namespaces give the same losses as `mpirun -np 2` on loopback
 * (1e-6 relative); the remote launch went through the agent; the bytes received on each veth end exceed what the
 * gradient all-reduce alone must move (DP2), so the ranks' traffic did cross the link.
 * Skips, saying why, when not root, without `ip` or MPI, or where namespaces or veth pairs are not permitted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { root, bin } from './helpers/cli.js';
import { mpiSkip, mpirun } from './helpers/mpi.js';
import { netnsPrecheck, twoHosts, NETNS_HOSTS, NETNS_SUBNET } from './helpers/netns.js';
import { paramCount, type LlamaConfig } from '../src/model/config.js';
import { Rng } from '../src/util/rng.js';

const skip = mpiSkip || netnsPrecheck();

const MODEL = ['--dim', '32', '--layers', '2', '--heads', '4', '--kv-heads', '2', '--multiple-of', '16', '--vocab', '260'];
const STEPS = 5;
const BATCH = 2;
const SEQ = 32;

function losses(out: string): number[] {
  return readFileSync(join(out, 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((r) => 'loss' in r).map((r) => r.loss as number);
}

test('two ranks in two network namespaces over a veth pair train like two ranks on loopback (DP2, TP2+SP)', { skip, timeout: 240_000 }, (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'llama-ts-netns-run-'));
  const hosts = twoHosts();
  try {
    if ('skip' in hosts) {
      t.skip(hosts.skip);
      return;
    }
    const text = join(dir, 'text.txt');
    const rng = new Rng(1);
    const words = 'the quick brown fox jumps over a lazy dog and then it rests in a field of green grass while birds sing'.split(' ');
    writeFileSync(text, Array.from({ length: 200 }, () => Array.from({ length: 60 }, () => words[rng.int(words.length)]).join(' ')).join('\n\n'));
    const train = (out: string, extra: string[]) => [process.execPath, bin, 'train', ...MODEL, '--data', text, '--batch', String(BATCH), '--seq', String(SEQ),
      '--warmup', '2', '--eval-every', '0', '--quiet', '--steps', String(STEPS), '--out', join(dir, out), ...extra];

    for (const [name, extra] of [['dp2', []], ['tp2sp', ['--tp', '2', '--sp']]] as const) {
      const lo = mpirun(2, train(`${name}-lo`, [...extra]), { timeout: 90_000 });
      assert.equal(lo.status, 0, `loopback ${name}: exit ${lo.status}\n${lo.stdout}\n${lo.stderr}`);

      const before = [hosts.bytes(0), hosts.bytes(1)];
      const r = hosts.exec(['mpirun', '--allow-run-as-root', '--bind-to', 'none', '--host', NETNS_HOSTS.join(','), '-np', '2',
        '--mca', 'plm_rsh_agent', hosts.agent, '--mca', 'btl', 'tcp,self',
        '--mca', 'btl_tcp_if_include', NETNS_SUBNET, '--mca', 'oob_tcp_if_include', NETNS_SUBNET,
        '-x', 'LLAMA_TS_THREADS=1', ...train(`${name}-veth`, [...extra])], { cwd: root, timeoutMs: 90_000 });
      assert.equal(r.status, 0, `across namespaces ${name}: exit ${r.status} ${r.signal ?? ''}\n${r.stdout}\n${r.stderr}`);
      const after = [hosts.bytes(0), hosts.bytes(1)];
      const rx = [after[0].rx - before[0].rx, after[1].rx - before[1].rx];

      const want = losses(join(dir, `${name}-lo`));
      const got = losses(join(dir, `${name}-veth`));
      assert.equal(want.length, STEPS);
      assert.equal(got.length, STEPS, `${name}: steps`);
      got.forEach((g, i) => assert.ok(Math.abs(g - want[i]) <= 1e-6 * Math.abs(want[i]), `${name}: step ${i + 1} loss ${g} (namespaces) vs ${want[i]} (loopback)`));

      const config = (JSON.parse(readFileSync(join(dir, `${name}-veth`, 'checkpoints', `step-${String(STEPS).padStart(8, '0')}`, 'state.json'), 'utf8')) as { config: LlamaConfig }).config;
      // DP2: each rank needs the other's gradient for every parameter once a step (any all-reduce algorithm);
      // TP2+SP: at least one all-gather of half the activations per step (there are many more)
      const floor = name === 'dp2' ? STEPS * paramCount(config) * 4 : (STEPS * BATCH * SEQ * config.dim * 4) / 2;
      for (const i of [0, 1]) assert.ok(rx[i] > floor, `${name}: ${rx[i]} bytes received on ${hosts.veth[i]}, fewer than the ${floor} the ranks must exchange`);
      t.diagnostic(`${name}: losses ${got.map((l) => l.toFixed(6)).join(' ')} (${got.every((g, i) => g === want[i]) ? 'bitwise equal to' : 'within 1e-6 of'} loopback); `
        + `veth rx ${rx[0]} / ${rx[1]} bytes (floor ${floor})`);
    }
    const launches = readFileSync(hosts.agentLog, 'utf8').trim().split('\n');
    assert.equal(launches.length, 2, `one remote launch per run:\n${launches.join('\n')}`);
    for (const l of launches) assert.match(l, new RegExp(`${NETNS_HOSTS[1].replace(/\./g, '\\.')}\\s+.*orted`));
  } finally {
    if (!('skip' in hosts)) hosts.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
