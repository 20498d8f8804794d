/**
 * MpiComm (src/parallel/mpi.ts) under `mpirun -np 2` over the TCP transport on loopback (not shared memory, so the
 * network path is exercised): every collective in float32 and float64, blocking and nonblocking, in-place
 * all-gather, split, and a nonblocking all-reduce of 4 MiB that completes while the rank computes
 * (test/helpers/mpi-worker.ts). Skips only when mpirun or the MPI addon is missing (CI installs OpenMPI).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { root } from './helpers/cli.js';
import { createComm } from '../src/parallel/mpi.js';
import { LOCAL_COMM } from '../src/parallel/comm.js';
import { mpiSkip as skip, mpirun } from './helpers/mpi.js';

test('MpiComm: every collective, split, and progress during compute, 2 ranks over TCP', { skip, timeout: 180_000 }, () => {
  const worker = join(root, 'dist', 'test', 'helpers', 'mpi-worker.js');
  const r = mpirun(2, [process.execPath, worker]);
  assert.equal(r.status, 0, `mpirun exited ${r.status} (${r.signal ?? ''})\n${r.stdout}\n${r.stderr}`);
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { rank: number; world: number; doneDuringCompute: boolean; exposedMs: number });
  assert.deepEqual(lines.map((l) => l.rank).sort(), [0, 1]);
  for (const l of lines) {
    assert.equal(l.world, 2);
    assert.equal(l.doneDuringCompute, true);
  }
});

test('MpiComm: a rank that throws ends the whole job (no MPI_Finalize, no hang at exit)', { skip, timeout: 120_000 }, () => {
  const worker = join(root, 'dist', 'test', 'helpers', 'mpi-worker.js');
  const t0 = performance.now();
  const r = mpirun(2, [process.execPath, worker, '--fail'], { timeout: 90_000 });
  const s = (performance.now() - t0) / 1000;
  assert.equal(r.signal, null, `mpirun hung (killed after ${s.toFixed(0)} s)\n${r.stderr}`);
  assert.notEqual(r.status, 0);
  assert.ok(s < 30, `the job took ${s.toFixed(1)} s to end`);
  assert.match(r.stderr, /rank 1 fails on purpose/);
  assert.doesNotMatch(r.stdout, /rank 0 passed/);
});

test('createComm: LocalComm outside an MPI launcher', () => {
  assert.equal(createComm({}), LOCAL_COMM);
  assert.equal(createComm({ OMPI_COMM_WORLD_SIZE: '2', LLAMA_TS_COMM: 'local' }), LOCAL_COMM);
});

test('createComm: under a launcher without the MPI addon, one UserError line saying what to install', () => {
  const mod = join(root, 'dist', 'src', 'parallel', 'mpi.js');
  const code = `import { createComm } from ${JSON.stringify(mod)};
try { createComm(); console.log('no error'); } catch (e) { console.log(e.name + ': ' + e.message); }`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], {
    encoding: 'utf8', env: { ...process.env, OMPI_COMM_WORLD_SIZE: '2', LLAMA_TS_NO_MPI: '1' },
  });
  assert.equal(r.status, 0, r.stderr);
  const out = r.stdout.trim();
  assert.equal(out.split('\n').length, 1, out);
  assert.match(out, /^UserError: running under an MPI launcher \(OMPI_COMM_WORLD_SIZE is set\) but .*apt-get install openmpi-bin libopenmpi-dev, then npm rebuild/);
});
