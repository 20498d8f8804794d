/**
 * How the ranks of a run are arranged, and the few things the trainer does differently with more than one:
 * - `topology`: the world split into tensor-parallel groups of `tp` consecutive ranks and data-parallel groups of
 *   the ranks holding the same shard (Megatron-LM's order: TP innermost, so a TP group shares a host first).
 * - `gatherFull`: whole tensors from the shards of a TP group, for checkpoints that do not depend on the layout.
 * - `checkSameRun`: every rank must start the same run (config, settings, data position, step), else one line.
 * With one process every function is the identity or a no-op.
 */
import { LOCAL_COMM, type Comm } from '../parallel/comm.js';
import { FlatTensors, paramLayout, placeShard } from '../model/params.js';
import type { Backend } from '../kernels/backend.js';
import type { LlamaConfig } from '../model/config.js';
import { UserError } from '../util/errors.js';

export interface Topology {
  world: Comm;
  /** This rank's tensor-parallel group (consecutive ranks). */
  tp: Comm;
  /** This rank's data-parallel group (one rank of each TP group, the same shard). */
  dp: Comm;
}

export function topology(world: Comm, tp = 1): Topology {
  if (!Number.isInteger(tp) || tp < 1) throw new UserError(`--tp must be a positive integer, got ${tp}`);
  if (world.world === 1 && tp > 1) throw new UserError(`--tp ${tp} splits the model over ${tp} processes: run under mpirun -np ${tp} (or a multiple of ${tp}); see docs/DISTRIBUTED.md`);
  if (world.world % tp !== 0) throw new UserError(`--tp ${tp} must divide the number of ranks (${world.world})`);
  if (world.world === 1) return { world, tp: LOCAL_COMM, dp: world };
  // MPI_Comm_split is collective: every rank takes the same branches here
  const tpComm = tp === 1 ? LOCAL_COMM : tp === world.world ? world : world.split(Math.floor(world.rank / tp), world.rank);
  const dpComm = tp === 1 ? world : tp === world.world ? LOCAL_COMM : world.split(world.rank % tp, world.rank);
  return { world, tp: tpComm, dp: dpComm };
}

/** The whole tensors of `flat` (this rank's shards) gathered over its TP group; `flat` itself with one TP rank. */
export function gatherFull(flat: FlatTensors, config: LlamaConfig, tp: Comm, backend: Backend): FlatTensors {
  if (tp.world === 1) return flat;
  const full = new FlatTensors(paramLayout(config), backend);
  for (const t of flat.layout.tensors) {
    const whole = full.layout.byName.get(t.name)!;
    if (t.split === 'replicated') {
      full.view(whole).set(flat.view(t));
      continue;
    }
    const parts = backend.alloc(t.size * tp.world);
    tp.allGather(flat.view(t), parts);
    for (let r = 0; r < tp.world; r++) placeShard(t, parts.subarray(r * t.size, (r + 1) * t.size), full.view(whole), { size: tp.world, rank: r });
  }
  return full;
}

/** FNV-1a of a string, as a number exact in float64. */
function fingerprint(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** Stops every rank with one line when the ranks were not started on the same run. */
export function checkSameRun(world: Comm, what: Record<string, unknown>): void {
  if (world.world === 1) return;
  const keys = Object.keys(what);
  const mine = Float64Array.from(keys.map((k) => fingerprint(JSON.stringify(what[k]))));
  const all = new Float64Array(mine.length * world.world);
  world.allGather(mine, all);
  for (let r = 0; r < world.world; r++) {
    keys.forEach((k, i) => {
      if (all[r * keys.length + i] !== all[i]) throw new UserError(`rank ${r} differs from rank 0 in its ${k}: every rank must run the same command on the same data`);
    });
  }
}

/** True on every rank when any rank asked to stop (Ctrl-C reaches ranks at different moments). */
export function anyRank(world: Comm, flag: boolean): boolean {
  if (world.world === 1) return flag;
  const b = new Float64Array([flag ? 1 : 0]);
  world.allReduce(b);
  return b[0] > 0;
}
