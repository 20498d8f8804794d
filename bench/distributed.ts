/**
 * Distributed training speed on this machine, same run, interleaved A B A B (the goals):
 *   dp:  mini-15m, DP2 under mpirun with 1 thread per rank  vs  one process with 2 threads and --accum 2
 *        (the same global batch: 2 × 8 × 256 tokens per step)
 *   tp:  mini-42m, TP2 and TP2+SP under mpirun, 1 thread per rank  vs  one process with 2 threads
 * Each measurement is `llama-ts train` on the Brown corpus (byte tokens, --vocab 32000 so the vocabulary divides
 * by 2) for --steps steps; tokens/s and the exposed communication are the medians of train.jsonl's steps after the
 * first. Then `bench train` under mpirun gives the bytes sent per step against plan cluster's model and the memory
 * per rank. Prints one JSON object. Needs mpirun and the MPI addon.
 *
 *   node dist/bench/distributed.js [--reps 3] [--steps 6]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

const { values } = parseArgs({ options: { reps: { type: 'string', default: '3' }, steps: { type: 'string', default: '6' } } });
const reps = Number(values.reps);
const steps = Number(values.steps);
const root = fileURLToPath(new URL('../../', import.meta.url));
const bin = join(root, 'bin', 'llama-ts.js');
const MPI = ['-np', '2', '--bind-to', 'none', '--allow-run-as-root', '-x', 'LLAMA_TS_THREADS=1'];
const dir = mkdtempSync(join(tmpdir(), 'llama-ts-distbench-'));

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const r3 = (x: number) => Math.round(x * 1000) / 1000;

interface Run { tokens_per_s: number; step_ms: number; comm_ms: number }

function trainRun(name: string, mpi: boolean, args: string[]): Run {
  const out = join(dir, `${name}-${Math.random().toString(36).slice(2)}`);
  const cmd = [bin, 'train', ...args, '--steps', String(steps), '--eval-every', '0', '--eval-batches', '0', '--ckpt-every', '0', '--quiet', '--out', out];
  const r = mpi ? spawnSync('mpirun', [...MPI, process.execPath, ...cmd], { encoding: 'utf8', cwd: root })
    : spawnSync(process.execPath, cmd, { encoding: 'utf8', cwd: root, env: { ...process.env, LLAMA_TS_THREADS: '2' } });
  if (r.status !== 0) throw new Error(`${name}: exit ${r.status}\n${r.stderr}`);
  const recs = readFileSync(join(out, 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((x) => 'loss' in x).slice(1);
  rmSync(out, { recursive: true, force: true });
  return { tokens_per_s: median(recs.map((x) => x.tokens_per_s)), step_ms: median(recs.map((x) => x.ms.total)), comm_ms: median(recs.map((x) => x.ms.comm)) };
}

function compare(label: string, base: [string, string[]], variants: [string, string[]][]) {
  const runs: Record<string, Run[]> = { [base[0]]: [] };
  for (const [n] of variants) runs[n] = [];
  for (let i = 0; i < reps; i++) {
    runs[base[0]].push(trainRun(base[0], false, base[1]));
    for (const [n, a] of variants) runs[n].push(trainRun(n, true, a));
  }
  const summary = (rs: Run[]) => ({
    tokens_per_s: r3(median(rs.map((r) => r.tokens_per_s))), step_ms: r3(median(rs.map((r) => r.step_ms))),
    exposed_comm_ms: r3(median(rs.map((r) => r.comm_ms))), exposed_comm_fraction: r3(median(rs.map((r) => r.comm_ms / r.step_ms))),
    runs_tokens_per_s: rs.map((r) => r3(r.tokens_per_s)),
  });
  const b = summary(runs[base[0]]);
  const out: Record<string, unknown> = { [base[0]]: b };
  for (const [n] of variants) {
    const v = summary(runs[n]);
    out[n] = { ...v, ratio_vs_one_process: r3(v.tokens_per_s / b.tokens_per_s) };
  }
  return { [label]: out };
}

function benchDist(args: string[]) {
  const r = spawnSync('mpirun', [...MPI, process.execPath, bin, 'bench', 'train', ...args], { encoding: 'utf8', cwd: root });
  if (r.status !== 0) throw new Error(`bench train ${args.join(' ')}: exit ${r.status}\n${r.stderr}`);
  const j = JSON.parse(r.stdout.trim().split('\n').pop() as string);
  return { layout: args.filter((a) => a.startsWith('--tp') || a === '--sp' || a === '--zero').join(' ') || 'dp2', tokens_per_s: j.tokens_per_s, exposed_comm_fraction: j.exposed_comm_fraction, bytes_sent_per_step_rank0: j.bytes_sent_per_step_rank0, plan_cluster_bytes_per_step: j.plan_cluster_bytes_per_step, measured_over_predicted: j.measured_over_predicted, memory_bytes_rank0: j.memory_bytes_rank0 };
}

const m15 = ['--preset', 'mini-15m', '--vocab', '32000', '--data', 'brown', '--batch', '8', '--seq', '256'];
const m42 = ['--preset', 'mini-42m', '--vocab', '32000', '--data', 'brown', '--batch', '4', '--seq', '256'];
const flags = (cpus()[0] ? readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)?.[1].trim().split(/\s+/).filter((f) => /^(avx|amx)/.test(f)) : []) ?? [];
const result = {
  bench: 'distributed-train', cpu: cpus()[0]?.model ?? 'unknown', cpu_flags: flags, cores: cpus().length, steps, reps,
  ...compare('dp_mini15m', ['one_process_2_threads_accum2', [...m15, '--accum', '2']], [['dp2_1_thread_per_rank', m15]]),
  ...compare('tp_mini42m', ['one_process_2_threads', m42], [['tp2_1_thread_per_rank', [...m42, '--tp', '2']], ['tp2_sp_1_thread_per_rank', [...m42, '--tp', '2', '--sp']]]),
  comm_model: [
    benchDist(['--preset', 'mini-15m', '--batch', '8', '--seq', '256']),
    benchDist(['--preset', 'mini-15m', '--batch', '8', '--seq', '256', '--zero', '1']),
    benchDist(['--preset', 'mini-42m', '--batch', '4', '--seq', '256', '--tp', '2']),
    benchDist(['--preset', 'mini-42m', '--batch', '4', '--seq', '256', '--tp', '2', '--sp']),
  ],
};
rmSync(dir, { recursive: true, force: true });
console.log(JSON.stringify(result, null, 1));
