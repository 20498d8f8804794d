/**
 * A Comm that counts what passes through another: bytes each rank sends under the ring model of the collectives
 * (what plan/cluster.ts assumes: all-reduce 2·(n−1)/n of the buffer, reduce-scatter and all-gather (n−1)/n of the
 * whole, broadcast the buffer) and the time spent blocked in them (blocking calls and wait()). Its sub-communicators
 * (split) count into the same tally under the labels given, in the order the splits are made (training's topology
 * splits the tensor-parallel group first, then the data-parallel one). Used by `bench train` under mpirun.
 */
import type { FloatArray } from '../kernels/backend.js';
import type { Comm, CommRequest } from './comm.js';

export interface CommTally {
  /** Bytes sent by this rank, per label (the label of the Comm the collective ran on). */
  bytes: Record<string, number>;
  calls: Record<string, number>;
  /** Milliseconds this rank waited for collectives to finish. */
  waitMs: number;
}

export function emptyTally(): CommTally {
  return { bytes: {}, calls: {}, waitMs: 0 };
}

const bytesOf = (a: FloatArray) => a.length * a.BYTES_PER_ELEMENT;

export class CountingComm implements Comm {
  constructor(readonly inner: Comm, readonly tally: CommTally, readonly label = 'world', private readonly splitLabels: string[] = []) {}

  get rank(): number {
    return this.inner.rank;
  }
  get world(): number {
    return this.inner.world;
  }

  private add(bytes: number): void {
    this.tally.bytes[this.label] = (this.tally.bytes[this.label] ?? 0) + bytes;
    this.tally.calls[this.label] = (this.tally.calls[this.label] ?? 0) + 1;
  }
  private timed<T>(f: () => T): T {
    const t0 = performance.now();
    const r = f();
    this.tally.waitMs += performance.now() - t0;
    return r;
  }
  private request(r: CommRequest): CommRequest {
    return { wait: () => this.timed(() => r.wait()), test: () => r.test() };
  }
  private ring(kind: 'allReduce' | 'gather', bytes: number): void {
    const n = this.inner.world;
    this.add(kind === 'allReduce' ? (2 * (n - 1) * bytes) / n : ((n - 1) * bytes) / n);
  }

  allReduce(buf: FloatArray): void {
    this.ring('allReduce', bytesOf(buf));
    this.timed(() => this.inner.allReduce(buf));
  }
  reduceScatter(send: FloatArray, recv: FloatArray): void {
    this.ring('gather', bytesOf(send));
    this.timed(() => this.inner.reduceScatter(send, recv));
  }
  allGather(send: FloatArray, recv: FloatArray): void {
    this.ring('gather', bytesOf(recv));
    this.timed(() => this.inner.allGather(send, recv));
  }
  broadcast(buf: FloatArray, root: number): void {
    this.add(this.inner.rank === root ? bytesOf(buf) : 0);
    this.timed(() => this.inner.broadcast(buf, root));
  }
  barrier(): void {
    this.timed(() => this.inner.barrier());
  }
  iallReduce(buf: FloatArray): CommRequest {
    this.ring('allReduce', bytesOf(buf));
    return this.request(this.inner.iallReduce(buf));
  }
  ireduceScatter(send: FloatArray, recv: FloatArray): CommRequest {
    this.ring('gather', bytesOf(send));
    return this.request(this.inner.ireduceScatter(send, recv));
  }
  iallGather(send: FloatArray, recv: FloatArray): CommRequest {
    this.ring('gather', bytesOf(recv));
    return this.request(this.inner.iallGather(send, recv));
  }
  ibroadcast(buf: FloatArray, root: number): CommRequest {
    this.add(this.inner.rank === root ? bytesOf(buf) : 0);
    return this.request(this.inner.ibroadcast(buf, root));
  }
  split(color: number, key: number): Comm {
    return new CountingComm(this.inner.split(color, key), this.tally, this.splitLabels.shift() ?? 'split', this.splitLabels);
  }
}
