/**
 * `Comm` over MPI (OpenMPI 4.1 on Debian: `apt-get install openmpi-bin libopenmpi-dev`), through the optional addon
 * build/Release/llama_ts_mpi.node (native/mpi/mpi.cc, built at install by scripts/build-mpi.mjs when mpicc is found).
 *
 * Every MPI call runs on one communication thread inside the addon, in the order the operations were started
 * (FIFO across all communicators). Blocking collectives enqueue and wait; the i* variants enqueue and return at
 * once, and the collective progresses on that thread while this thread (and the native pool) compute — OpenMPI has
 * no asynchronous progress, so a plain MPI_Iallreduce would not advance outside MPI calls. `test()` is an atomic
 * load; `wait()` blocks this thread (it is not a Promise: training code is synchronous).
 *
 * Rules that follow from the FIFO: every rank must start its collectives in the same program order (including those
 * on split communicators), and buffers passed to an i* call must not be touched until `wait()` returns or `test()`
 * is true (the addon keeps them alive until then).
 */
import { loadAddon, type LoadedAddon } from '../util/addon.js';
import type { FloatArray } from '../kernels/backend.js';
import { UserError } from '../util/errors.js';
import { LOCAL_COMM, type Comm, type CommRequest } from './comm.js';

/** The addon's surface (native/mpi/mpi.cc). Comms are small integers (0 = MPI_COMM_WORLD). */
interface MpiAddon {
  init(): { rank: number; size: number; threadLevel: number };
  run(op: number, comm: number, a?: FloatArray, b?: FloatArray, root?: number): void;
  start(op: number, comm: number, a?: FloatArray, b?: FloatArray, root?: number): object;
  wait(req: object): void;
  test(req: object): boolean;
  split(comm: number, color: number, key: number): { comm: number; rank: number; size: number };
  finalize(): void;
  version(): string;
}

const OP = { allReduce: 0, reduceScatter: 1, allGather: 2, broadcast: 3, barrier: 4 } as const;
const ADDON_FILE = 'llama_ts_mpi.node';
export const MPI_INSTALL_HINT = 'apt-get install openmpi-bin libopenmpi-dev, then npm rebuild (or npm run build:native)';

/**
 * OpenMPI settings applied when the user has not set them: the segmented ring all-reduce (algorithm 5, 1 MiB
 * segments) for every size. Measured on a shared 2-core VM with OpenMPI 4.1.4 (bench/comm.ts,
 * bench/results/comm-2core-epyc.json): an all-reduce of 24.4M floats between 2 ranks took ~4× less over shared memory
 * and ~2× less over TCP than with OpenMPI's default choice; small messages were unchanged. glibc malloc tunables
 * (keeping OpenMPI's large temporary buffers mapped) made no measurable difference on top of this, so none are set.
 * LLAMA_TS_MPI_DEFAULTS=0 disables these; any OMPI_MCA_* the user sets wins.
 */
export const MPI_ENV_DEFAULTS: Readonly<Record<string, string>> = {
  OMPI_MCA_coll_tuned_use_dynamic_rules: '1',
  OMPI_MCA_coll_tuned_allreduce_algorithm: '5',
  OMPI_MCA_coll_tuned_allreduce_algorithm_segmentsize: '1048576',
};

/**
 * Sets MPI_ENV_DEFAULTS in this process's environment where the user has not set them (OpenMPI reads them at
 * MPI_Init). LLAMA_TS_MPI_DEFAULTS=0 leaves the environment alone. Returns what it set.
 */
export function applyMpiEnvDefaults(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const set: Record<string, string> = {};
  if (env.LLAMA_TS_MPI_DEFAULTS === '0') return set;
  for (const [k, v] of Object.entries(MPI_ENV_DEFAULTS)) {
    if (env[k] === undefined) env[k] = set[k] = v;
  }
  return set;
}

/** The launcher variable that says this process is one rank of an MPI job, or null outside mpirun/srun. */
export function mpiLauncherVar(env: NodeJS.ProcessEnv = process.env): string | null {
  for (const v of ['OMPI_COMM_WORLD_SIZE', 'PMIX_RANK', 'PMI_SIZE']) if (env[v] !== undefined) return v;
  return null;
}

/** Loads build/Release/llama_ts_mpi.node once. Never throws: returns why it could not. */
export function loadMpiAddon(): LoadedAddon<MpiAddon> {
  return loadAddon(ADDON_FILE, 'LLAMA_TS_NO_MPI', {
    disabled: 'the MPI addon is disabled by LLAMA_TS_NO_MPI=1',
    missing: `the MPI addon is not built (no build/Release/${ADDON_FILE})`,
    failed: 'the MPI addon failed to load',
  }, (m) => m as MpiAddon);
}

function elemBytes(a: FloatArray): number {
  return a.BYTES_PER_ELEMENT;
}

function sameType(op: string, a: FloatArray, b: FloatArray): void {
  if (a.constructor !== b.constructor) throw new TypeError(`${op}: send is ${a.constructor.name}, recv is ${b.constructor.name}`);
}

function checkGather(op: string, part: FloatArray, whole: FloatArray, world: number): void {
  if (whole.length !== part.length * world) {
    throw new RangeError(`${op}: ${whole.length} elements for ${world} rank(s) × ${part.length}`);
  }
}

function overlaps(a: FloatArray, b: FloatArray): boolean {
  if (a.buffer !== b.buffer) return false;
  return a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength;
}

class MpiRequest implements CommRequest {
  private done = false;
  constructor(private readonly addon: MpiAddon, private readonly req: object) {}
  wait(): void {
    if (this.done) return;
    this.addon.wait(this.req);
    this.done = true;
  }
  test(): boolean {
    if (!this.done && this.addon.test(this.req)) this.wait(); // releases the buffers; surfaces an MPI error
    return this.done;
  }
}

let world: MpiComm | null = null;

export class MpiComm implements Comm {
  private constructor(
    private readonly addon: MpiAddon,
    private readonly handle: number,
    readonly rank: number,
    readonly world: number,
  ) {}

  /** MPI_COMM_WORLD (initialises MPI on first use; MPI_Finalize runs when the process exits with code 0). */
  static world(): MpiComm {
    if (world) return world;
    const { addon, error } = loadMpiAddon();
    if (!addon) throw new UserError(`${error}: ${MPI_INSTALL_HINT}`);
    applyMpiEnvDefaults();
    const w = addon.init();
    world = new MpiComm(addon, 0, w.rank, w.size);
    // A rank that fails exits without MPI_Finalize, so that mpirun ends the whole job instead of hanging in it.
    process.on('exit', (code) => {
      if (code === 0) addon.finalize();
    });
    return world;
  }

  /** The MPI library's version line (e.g. "Open MPI v4.1.4"). */
  version(): string {
    return this.addon.version();
  }

  private checkRoot(op: string, root: number): void {
    if (!Number.isInteger(root) || root < 0 || root >= this.world) throw new RangeError(`${op}: root ${root} outside a world of ${this.world}`);
  }

  private checkReduceScatter(send: FloatArray, recv: FloatArray): void {
    sameType('reduceScatter', send, recv);
    checkGather('reduceScatter', recv, send, this.world);
    if (recv.length > 0 && overlaps(send, recv)) throw new RangeError('reduceScatter: send and recv overlap');
  }

  private checkAllGather(send: FloatArray, recv: FloatArray): void {
    sameType('allGather', send, recv);
    checkGather('allGather', send, recv, this.world);
    // in place: send may be recv's own slot (this rank's part), nothing else of recv
    if (send.length > 0 && overlaps(send, recv) && send.byteOffset !== recv.byteOffset + this.rank * send.length * elemBytes(send)) {
      throw new RangeError(`allGather: send overlaps recv other than at this rank's slot [${this.rank * send.length}, ${(this.rank + 1) * send.length})`);
    }
  }

  allReduce(buf: FloatArray): void {
    this.addon.run(OP.allReduce, this.handle, buf);
  }
  reduceScatter(send: FloatArray, recv: FloatArray): void {
    this.checkReduceScatter(send, recv);
    this.addon.run(OP.reduceScatter, this.handle, send, recv);
  }
  allGather(send: FloatArray, recv: FloatArray): void {
    this.checkAllGather(send, recv);
    this.addon.run(OP.allGather, this.handle, send, recv);
  }
  broadcast(buf: FloatArray, root: number): void {
    this.checkRoot('broadcast', root);
    this.addon.run(OP.broadcast, this.handle, buf, undefined, root);
  }
  barrier(): void {
    this.addon.run(OP.barrier, this.handle);
  }
  iallReduce(buf: FloatArray): CommRequest {
    return new MpiRequest(this.addon, this.addon.start(OP.allReduce, this.handle, buf));
  }
  ireduceScatter(send: FloatArray, recv: FloatArray): CommRequest {
    this.checkReduceScatter(send, recv);
    return new MpiRequest(this.addon, this.addon.start(OP.reduceScatter, this.handle, send, recv));
  }
  iallGather(send: FloatArray, recv: FloatArray): CommRequest {
    this.checkAllGather(send, recv);
    return new MpiRequest(this.addon, this.addon.start(OP.allGather, this.handle, send, recv));
  }
  ibroadcast(buf: FloatArray, root: number): CommRequest {
    this.checkRoot('ibroadcast', root);
    return new MpiRequest(this.addon, this.addon.start(OP.broadcast, this.handle, buf, undefined, root));
  }
  split(color: number, key: number): Comm {
    if (!Number.isInteger(color) || color < 0) throw new RangeError(`split: color must be a non-negative integer, got ${color}`);
    const s = this.addon.split(this.handle, color, key);
    return new MpiComm(this.addon, s.comm, s.rank, s.size);
  }
}

/**
 * The process's world communicator: MPI when this process was started by mpirun/srun (OMPI_COMM_WORLD_SIZE,
 * PMIX_RANK or PMI_SIZE set), else the one-process LocalComm. LLAMA_TS_COMM=local forces LocalComm.
 * Under a launcher without the MPI addon: a UserError saying what to install.
 */
export function createComm(env: NodeJS.ProcessEnv = process.env): Comm {
  if (env.LLAMA_TS_COMM === 'local') return LOCAL_COMM;
  const v = mpiLauncherVar(env);
  if (!v) return LOCAL_COMM;
  const { addon, error } = loadMpiAddon();
  if (!addon) throw new UserError(`running under an MPI launcher (${v} is set) but ${error}: ${MPI_INSTALL_HINT}`);
  return MpiComm.world();
}
