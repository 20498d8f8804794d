/**
 * The communication seam. Training code calls a `Comm` wherever data-parallel or tensor-parallel training has to
 * exchange data (gradients after backward, activations inside the block); with one process every call is a no-op
 * or a copy, so single-process training pays nothing and reads the same.
 *
 * Semantics follow MPI collectives (the MPI implementation is a thin binding over them):
 * - allReduce: buf ← Σ over ranks of buf (in place).
 * - reduceScatter: recv ← (Σ over ranks of send)[rank·n, (rank+1)·n), n = recv.length, send.length = world·n.
 * - allGather: recv[r·n, (r+1)·n) ← send of rank r, n = send.length, recv.length = world·n.
 * - broadcast: buf ← buf of `root`.
 * Buffers are float32 or float64 typed arrays (the `ref-f64` oracle runs in float64); every rank passes the same
 * lengths. The i* variants start the collective and return a request; the buffers must not be touched until
 * `wait()` returns. Collectives on one Comm complete in the order they were started on every rank.
 */
import type { FloatArray } from '../kernels/backend.js';

export interface CommRequest {
  /** Blocks until the collective has completed on this rank. Idempotent. */
  wait(): void;
  /** True once the collective has completed (never blocks). */
  test(): boolean;
}

export interface Comm {
  readonly rank: number;
  readonly world: number;
  allReduce(buf: FloatArray): void;
  reduceScatter(send: FloatArray, recv: FloatArray): void;
  allGather(send: FloatArray, recv: FloatArray): void;
  broadcast(buf: FloatArray, root: number): void;
  barrier(): void;
  iallReduce(buf: FloatArray): CommRequest;
  ireduceScatter(send: FloatArray, recv: FloatArray): CommRequest;
  iallGather(send: FloatArray, recv: FloatArray): CommRequest;
  ibroadcast(buf: FloatArray, root: number): CommRequest;
  /** Sub-communicator of the ranks that pass the same color, ordered by key (MPI_Comm_split): TP and DP groups. */
  split(color: number, key: number): Comm;
}

const DONE: CommRequest = { wait() {}, test: () => true };

function checkGather(op: string, part: FloatArray, whole: FloatArray, world: number): void {
  if (whole.length !== part.length * world) {
    throw new RangeError(`${op}: ${whole.length} elements for ${world} rank(s) × ${part.length}`);
  }
}

/** One process: rank 0 of a world of 1. Reductions are the identity; scatter/gather are copies. */
export class LocalComm implements Comm {
  readonly rank = 0;
  readonly world = 1;
  allReduce(_buf: FloatArray): void {}
  reduceScatter(send: FloatArray, recv: FloatArray): void {
    checkGather('reduceScatter', recv, send, 1);
    if (send !== recv) recv.set(send);
  }
  allGather(send: FloatArray, recv: FloatArray): void {
    checkGather('allGather', send, recv, 1);
    if (send !== recv) recv.set(send);
  }
  broadcast(_buf: FloatArray, root: number): void {
    if (root !== 0) throw new RangeError(`broadcast: root ${root} outside a world of 1`);
  }
  barrier(): void {}
  iallReduce(buf: FloatArray): CommRequest {
    this.allReduce(buf);
    return DONE;
  }
  ireduceScatter(send: FloatArray, recv: FloatArray): CommRequest {
    this.reduceScatter(send, recv);
    return DONE;
  }
  iallGather(send: FloatArray, recv: FloatArray): CommRequest {
    this.allGather(send, recv);
    return DONE;
  }
  ibroadcast(buf: FloatArray, root: number): CommRequest {
    this.broadcast(buf, root);
    return DONE;
  }
  split(_color: number, _key: number): Comm {
    return this;
  }
}

export const LOCAL_COMM: Comm = new LocalComm();
