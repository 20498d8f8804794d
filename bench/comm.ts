/**
 * Communication benchmark for MpiComm (src/parallel/mpi.ts). Prints one JSON document:
 *   - all-reduce (float32 sum) time and bus bandwidth by size, for each transport (shared memory `vader`, TCP on
 *     loopback) and each tuning configuration (OpenMPI defaults; llama-ts's OMPI_MCA_coll_tuned_* defaults; glibc
 *     malloc tunables that keep freed memory mapped; both);
 *   - overlap: native SGEMM compute alone, the same compute with an iallReduce of the whole mini-15m gradient
 *     (24.4M floats) in flight, and the wait left exposed after the compute.
 *
 *   node dist/bench/comm.js [--np 2] [--transports shm,tcp] [--configs none,coll,malloc,both] [--reps 5]
 *     [--sizes 1024,65536,1048576,4194304,24407712] [--overlap-floats 24407712] [--threads 1] [--rounds 3] [--no-overlap]
 * It starts `mpirun -np N` once per transport × configuration × round, the configurations interleaved within each
 * round (ranks run this file with --child); all-reduce times are the minimum and median over all rounds' repetitions;
 * the overlap is measured with the shipped defaults (config `coll`) in each round. Cores may be shared with other
 * work: numbers are noisy; compare within one run, and trust the minima more than the medians.
 */
import { parseArgs } from 'node:util';
import { spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { MpiComm, MPI_ENV_DEFAULTS, mpiLauncherVar } from '../src/parallel/mpi.js';
import { createNativeBackend, loadNative } from '../src/kernels/native.js';

const { values: opt } = parseArgs({
  options: {
    np: { type: 'string', default: '2' },
    transports: { type: 'string', default: 'shm,tcp' },
    configs: { type: 'string', default: 'none,coll,malloc,both' },
    reps: { type: 'string', default: '5' },
    sizes: { type: 'string', default: '1024,65536,1048576,4194304,24407712' },
    'overlap-floats': { type: 'string', default: '24407712' },
    threads: { type: 'string', default: '1' },
    rounds: { type: 'string', default: '3' },
    'no-overlap': { type: 'boolean', default: false },
    child: { type: 'boolean', default: false },
  },
});

const MALLOC_TUNABLES = 'glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4294967296';
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const r3 = (x: number): number => Math.round(x * 1000) / 1000;

function child(): void {
  const c = MpiComm.world();
  const reps = Number(opt.reps);
  const sizes = opt.sizes!.split(',').map(Number);
  const allreduce = [];
  for (const n of sizes) {
    const buf = new Float32Array(n).fill(1);
    const t: number[] = [];
    for (let i = 0; i < reps + 1; i++) {
      c.barrier();
      const t0 = performance.now();
      c.allReduce(buf);
      if (i > 0) t.push(performance.now() - t0); // the first is a warm-up
    }
    allreduce.push({ floats: n, ms: t.map(r3) });
  }

  // overlap: SGEMM on the native pool while an iallReduce is in flight on the comm thread
  let overlap: Record<string, unknown> | string = 'native addon not built';
  if (process.env.LLAMA_TS_BENCH_OVERLAP === '0') overlap = 'not measured in this run';
  else if (loadNative().addon) {
    const be = createNativeBackend();
    be.setThreads(Number(opt.threads));
    const M = 256, K = 1024, N = 1024;
    const x = new Float32Array(M * K).fill(0.5), w = new Float32Array(N * K).fill(0.25), out = new Float32Array(M * N);
    const gemm = (reps: number): number => {
      const t0 = performance.now();
      for (let i = 0; i < reps; i++) be.matmul(out, x, w, M, K, N);
      return performance.now() - t0;
    };
    const n = Number(opt['overlap-floats']);
    const grad = new Float32Array(n).fill(1);
    c.barrier();
    let t0 = performance.now();
    c.allReduce(grad);
    const commAlone = performance.now() - t0;
    // same amount of work on every rank: at least 1 s and 2× the all-reduce
    const each = gemm(3) / 3;
    const count = new Float64Array([Math.ceil(Math.max(1000, 2 * commAlone) / each)]);
    c.allReduce(count); // sum over ranks → same count everywhere
    const reps = Math.ceil(count[0] / c.world);
    const alone: number[] = [], withComm: number[] = [], exposed: number[] = [], commOnly: number[] = [commAlone];
    for (let i = 0; i < 3; i++) {
      c.barrier();
      alone.push(gemm(reps));
      c.barrier();
      const req = c.iallReduce(grad);
      withComm.push(gemm(reps));
      t0 = performance.now();
      req.wait();
      exposed.push(performance.now() - t0);
      c.barrier();
      t0 = performance.now();
      c.allReduce(grad);
      commOnly.push(performance.now() - t0);
    }
    overlap = {
      floats: n, gemm: `${M}x${K}x${N} x ${reps}`, threads: be.threads(),
      allreduce_alone_ms: r3(median(commOnly)), compute_alone_ms: r3(median(alone)),
      compute_with_iallreduce_ms: r3(median(withComm)), exposed_wait_ms: r3(median(exposed)),
      runs: { compute_alone_ms: alone.map(r3), compute_with_iallreduce_ms: withComm.map(r3), exposed_wait_ms: exposed.map(r3) },
    };
  }
  if (c.rank === 0) console.log(JSON.stringify({ world: c.world, version: c.version(), allreduce, overlap }));
}

function parent(): void {
  const self = fileURLToPath(import.meta.url);
  const transports: Record<string, string[]> = {
    shm: ['--mca', 'btl', 'vader,self'],
    tcp: ['--mca', 'btl', 'tcp,self', '--mca', 'btl_tcp_if_include', 'lo'],
  };
  const configs: Record<string, Record<string, string>> = {
    none: { LLAMA_TS_MPI_DEFAULTS: '0' },
    coll: {},
    malloc: { LLAMA_TS_MPI_DEFAULTS: '0', GLIBC_TUNABLES: MALLOC_TUNABLES },
    both: { GLIBC_TUNABLES: MALLOC_TUNABLES },
  };
  const samples = new Map<string, number[]>(); // transport/config/floats → all repetitions of all rounds
  const overlaps: Record<string, unknown[]> = {};
  let version = '';
  for (let round = 0; round < Number(opt.rounds); round++) {
    for (const t of opt.transports!.split(',')) {
      for (const k of opt.configs!.split(',')) {
        const measureOverlap = !opt['no-overlap'] && k === 'coll';
        const env = { ...process.env, ...configs[k], OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1',
          LLAMA_TS_THREADS: opt.threads!, LLAMA_TS_BENCH_OVERLAP: measureOverlap ? '1' : '0' };
        const args = ['-np', opt.np!, '--oversubscribe', '--bind-to', 'none', '--mca', 'oob_tcp_if_include', 'lo', ...transports[t],
          process.execPath, self, '--child', '--reps', opt.reps!, '--sizes', opt.sizes!, '--overlap-floats', opt['overlap-floats']!, '--threads', opt.threads!];
        const r = spawnSync('mpirun', args, { env, encoding: 'utf8', timeout: 600_000 });
        if (r.status !== 0) throw new Error(`mpirun (${t}, ${k}) exited ${r.status}: ${r.stderr}`);
        const res = JSON.parse(r.stdout.trim().split('\n').pop()!) as { version: string; allreduce: { floats: number; ms: number[] }[]; overlap: unknown };
        version = res.version;
        for (const a of res.allreduce) {
          const key = `${t}/${k}/${a.floats}`;
          samples.set(key, [...(samples.get(key) ?? []), ...a.ms]);
        }
        if (measureOverlap) (overlaps[t] ??= []).push(res.overlap);
        process.stderr.write(`comm bench: round ${round + 1}: ${t} ${k} done\n`);
      }
    }
  }
  const np = Number(opt.np);
  const allreduce = [...samples].map(([key, ms]) => {
    const [transport, config, f] = key.split('/');
    const floats = Number(f);
    // bus bandwidth (NCCL's convention): 2(p−1)/p · bytes / time
    const bus = (t: number): number => r3(((2 * (np - 1)) / np) * floats * 4 / (t / 1000) / 1e9);
    return { transport, config, floats, mbytes: r3(floats * 4 / 1e6), samples: ms.length, min_ms: Math.min(...ms), median_ms: median(ms), bus_gbps_at_min: bus(Math.min(...ms)) };
  });
  const out = {
    bench: 'comm',
    machine: { cpu: cpus()[0]?.model ?? 'unknown', cpus: cpus().length, node: process.version, note: 'cores may be shared with other work: timings are noisy' },
    mpi: version, np, threads_per_rank: Number(opt.threads), reps: Number(opt.reps), rounds: Number(opt.rounds),
    command: `node dist/bench/comm.js ${process.argv.slice(2).join(' ')}`.trim(),
    configs: { none: 'OpenMPI defaults (LLAMA_TS_MPI_DEFAULTS=0)', coll: MPI_ENV_DEFAULTS, malloc: { GLIBC_TUNABLES: MALLOC_TUNABLES }, both: 'coll + malloc' },
    allreduce,
    overlap: overlaps,
  };
  console.log(JSON.stringify(out, null, 1));
}

if (opt.child || mpiLauncherVar()) child();
else parent();
