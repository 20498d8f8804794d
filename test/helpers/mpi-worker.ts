/**
 * One rank of the MPI tests (test/mpi-comm.test.ts runs it under `mpirun -np 2`). Checks every collective of
 * MpiComm against values computed locally, then that a nonblocking all-reduce of a few MB completes while this
 * thread computes without any MPI call. Prints one JSON line per rank on success; throws (exit ≠ 0) on a mismatch.
 * With --fail, rank 1 throws after one barrier (the job must end, not hang). Outside an MPI launcher it does nothing
 * (so a test runner that picks it up by accident passes it).
 */
import assert from 'node:assert/strict';
import { createComm, mpiLauncherVar, MpiComm } from '../../src/parallel/mpi.js';
import type { Comm } from '../../src/parallel/comm.js';
import type { FloatArray } from '../../src/kernels/backend.js';

type Ctor = Float32ArrayConstructor | Float64ArrayConstructor;

function eq(got: FloatArray, want: ArrayLike<number>, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) assert.fail(`${what}: [${i}] = ${got[i]}, want ${want[i]}`);
}

function make(T: Ctor, n: number, f: (i: number) => number): FloatArray {
  const a = new T(n);
  for (let i = 0; i < n; i++) a[i] = f(i);
  return a;
}

function collectives(c: Comm, T: Ctor, tag: string, nonblocking: boolean): void {
  const { rank, world } = c;
  const n = 1000 + 7; // not a multiple of anything in particular
  // all-reduce: Σ_r (r+1)·i/4
  const a = make(T, n, (i) => ((rank + 1) * i) / 4);
  const wantA = Array.from({ length: n }, (_, i) => ((world * (world + 1)) / 2) * i / 4);
  // reduce-scatter: send[j] = r·1000 + j; recv[k] = Σ_r (r·1000 + rank·n + k)
  const rsSend = make(T, world * n, (j) => rank * 1000 + j);
  const rsRecv = new T(n);
  const wantRs = Array.from({ length: n }, (_, k) => 1000 * ((world * (world - 1)) / 2) + world * (rank * n + k));
  // all-gather: send[k] = r·100 + k/2
  const agSend = make(T, n, (k) => rank * 100 + k / 2);
  const agRecv = new T(world * n);
  const wantAg = Array.from({ length: world * n }, (_, j) => Math.floor(j / n) * 100 + (j % n) / 2);
  // all-gather in place: this rank's slot of recv is the send buffer
  const agInPlace = new T(world * n).fill(-1);
  agInPlace.subarray(rank * n, (rank + 1) * n).set(agSend);
  // broadcast from the last rank
  const root = world - 1;
  const b = make(T, n, (i) => (rank === root ? i * 3 + 0.5 : -rank));
  const wantB = Array.from({ length: n }, (_, i) => i * 3 + 0.5);

  if (nonblocking) {
    // all started before any wait: they queue behind each other and complete in order
    const reqs = [
      c.iallReduce(a),
      c.ireduceScatter(rsSend, rsRecv),
      c.iallGather(agSend, agRecv),
      c.iallGather(agInPlace.subarray(rank * n, (rank + 1) * n), agInPlace),
      c.ibroadcast(b, root),
    ];
    for (const r of reqs.reverse()) r.wait();
    for (const r of reqs) {
      r.wait(); // idempotent
      assert.equal(r.test(), true, `${tag}: test() after wait()`);
    }
  } else {
    c.allReduce(a);
    c.reduceScatter(rsSend, rsRecv);
    c.allGather(agSend, agRecv);
    c.allGather(agInPlace.subarray(rank * n, (rank + 1) * n), agInPlace);
    c.broadcast(b, root);
    c.barrier();
  }
  eq(a, wantA, `${tag} allReduce`);
  eq(rsRecv, wantRs, `${tag} reduceScatter`);
  eq(agRecv, wantAg, `${tag} allGather`);
  eq(agInPlace, wantAg, `${tag} allGather in place`);
  eq(b, wantB, `${tag} broadcast`);
}

function busy(ms: number): number {
  // plain JS arithmetic: no MPI call, no await
  const x = new Float64Array(4096).fill(1.0001);
  let s = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    for (let i = 0; i < x.length; i++) s += x[i] * x[(i * 7) & 4095];
  }
  return s;
}

if (mpiLauncherVar() && process.argv[2] === '--fail') {
  // rank 1 fails after the first collective; rank 0 blocks in the next one until mpirun ends the job
  const c = createComm();
  c.barrier();
  if (c.rank === 1) throw new Error('rank 1 fails on purpose');
  c.barrier();
  console.log('rank 0 passed a barrier that rank 1 never entered');
} else if (mpiLauncherVar()) {
  const c = createComm();
  assert.ok(c instanceof MpiComm, 'createComm() under mpirun returns MpiComm');
  assert.equal(c.world, Number(process.env.OMPI_COMM_WORLD_SIZE ?? c.world));
  assert.equal(c.rank, Number(process.env.OMPI_COMM_WORLD_RANK ?? c.rank));
  assert.ok(c.world >= 2, 'run with at least 2 ranks');

  for (const [T, name] of [[Float32Array, 'f32'], [Float64Array, 'f64']] as const) {
    collectives(c, T, `${name} blocking`, false);
    collectives(c, T, `${name} nonblocking`, true);
  }

  // argument checks (same on every rank, before anything is sent)
  assert.throws(() => c.reduceScatter(new Float32Array(3), new Float32Array(2)), RangeError);
  assert.throws(() => c.allGather(new Float32Array(2), new Float64Array(2 * c.world)), TypeError);
  assert.throws(() => c.broadcast(new Float32Array(2), c.world), RangeError);
  const ov = new Float32Array(4 * c.world);
  assert.throws(() => c.allGather(ov.subarray(1, 3), ov.subarray(0, 2 * c.world)), RangeError);

  // split: one group per parity, ranks ordered by descending world rank
  const sub = c.split(c.rank % 2, -c.rank);
  const members = Array.from({ length: c.world }, (_, r) => r).filter((r) => r % 2 === c.rank % 2).sort((x, y) => y - x);
  assert.equal(sub.world, members.length, 'split: size');
  assert.equal(sub.rank, members.indexOf(c.rank), 'split: rank ordered by key');
  const s = new Float64Array([c.rank, 1]);
  sub.allReduce(s);
  eq(s, [members.reduce((x, y) => x + y, 0), members.length], 'split allReduce');
  // the two halves as one communicator again (color 0 for all), key = world rank: same order as world
  const all = sub.world < c.world ? c.split(0, c.rank) : sub;
  const g = new Float32Array(all.world);
  all.allGather(new Float32Array([c.rank * 10]), g);
  eq(g, Array.from({ length: c.world }, (_, r) => r * 10), 'split(0) allGather');

  // progress during compute: a few MB in flight while this thread computes, with no MPI call from JS
  const n = 1 << 20; // 4 MiB of float32
  const big = new Float32Array(n).fill(c.rank + 1);
  c.barrier();
  let t0 = performance.now();
  c.allReduce(big);
  const blockingMs = performance.now() - t0;
  big.fill(c.rank + 1);
  c.barrier();
  const computeMs = Math.max(1000, 20 * blockingMs);
  const req = c.iallReduce(big);
  busy(computeMs);
  const doneDuringCompute = req.test();
  t0 = performance.now();
  req.wait();
  const exposedMs = performance.now() - t0;
  const want = (c.world * (c.world + 1)) / 2;
  for (let i = 0; i < n; i += 4099) assert.equal(big[i], want, `iallReduce of ${n} floats: [${i}]`);
  assert.equal(big[n - 1], want);
  assert.ok(doneDuringCompute, `iallReduce of ${n} floats (blocking: ${blockingMs.toFixed(1)} ms) not complete after ${computeMs.toFixed(0)} ms of compute`);
  c.barrier();
  console.log(JSON.stringify({ rank: c.rank, world: c.world, version: (c as MpiComm).version(), blockingMs: +blockingMs.toFixed(2), computeMs, doneDuringCompute, exposedMs: +exposedMs.toFixed(3) }));
}
