/** Running commands under `mpirun` in tests: the TCP-on-loopback settings, and why MPI tests skip (only when MPI is absent). */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { loadMpiAddon } from '../../src/parallel/mpi.js';
import { root } from './cli.js';

const version = spawnSync('mpirun', ['--version'], { encoding: 'utf8' });
const addon = loadMpiAddon();

/** false, or why the MPI tests cannot run here (CI installs OpenMPI, so there they run). */
export const mpiSkip: false | string = version.error ? 'mpirun not found (apt-get install openmpi-bin libopenmpi-dev)'
  : !addon.addon ? `${addon.error} (apt-get install openmpi-bin libopenmpi-dev, then npm rebuild)` : false;

/** Ranks talk over TCP on loopback (not shared memory), so the network path is exercised; root allowed (CI containers). */
export const MPIRUN_TCP = ['--oversubscribe', '--allow-run-as-root', '--bind-to', 'none', '--mca', 'btl', 'tcp,self',
  '--mca', 'btl_tcp_if_include', 'lo', '--mca', 'oob_tcp_if_include', 'lo'];

/** `mpirun -np N <MPIRUN_TCP> ...cmd` from the repository root (or cwd). */
export function mpirun(np: number, cmd: string[], opts: { cwd?: string; timeout?: number } = {}): SpawnSyncReturns<string> {
  return spawnSync('mpirun', ['-np', String(np), ...MPIRUN_TCP, ...cmd], { encoding: 'utf8', timeout: opts.timeout ?? 150_000, cwd: opts.cwd ?? root });
}
