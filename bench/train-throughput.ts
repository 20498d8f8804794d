/**
 * Training-throughput benchmark (issue 4). Prints one JSON document:
 *   - training tokens/s, step time by phase and MFU on the native backend for mini-15m (batch 8, seq 256),
 *     mini-42m (batch 4, seq 512) and mini-15m with vocab 4096; the PyTorch reference step
 *     (tools/reference/torch_train_bench.py) on the same shape in the same run when python3-torch is importable,
 *     as installed and with its OpenBLAS given this CPU's kernels (OPENBLAS_CORETYPE), and the ratios;
 *   - SGEMM GFLOP/s for every matrix product shape of those models (and OpenBLAS on the same shapes when
 *     libopenblas-dev is installed — a comparison only, never a dependency);
 *   - peak memory of a training step at seq 256, 1024 and 4096, and of attention forward+backward alone.
 *
 *   node dist/bench/train-throughput.js [--steps N] [--only mini-15m,...] [--no-torch] [--no-train] [--no-sgemm] [--no-memory]
 *     [--sgemm-reps N]   (SGEMM timings: median of N calls, default 11)
 * The machine's cores may be shared: numbers are noisy, run it on a quiet machine and compare within one run.
 */
import { peakRssBytes } from '../src/util/memory.js';
import { parseArgs } from 'node:util';
import { spawnSync, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchTrain, measureSgemmPeak, PEAK_SOURCE } from '../src/bench/train.js';
import { createBackend } from '../src/kernels/index.js';
import { createNativeBackend, loadNative } from '../src/kernels/native.js';
import { ffnHiddenDim, headDim, makeConfig, type LlamaConfig } from '../src/model/config.js';
import { Llama } from '../src/model/llama.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

interface Case { name: string; preset: string; batch: number; seq: number; overrides?: Partial<LlamaConfig> }
const CASES: Case[] = [
  { name: 'mini-15m', preset: 'mini-15m', batch: 8, seq: 256 },
  { name: 'mini-42m', preset: 'mini-42m', batch: 4, seq: 512 },
  { name: 'mini-15m-vocab4096', preset: 'mini-15m', batch: 8, seq: 256, overrides: { vocabSize: 4096 } },
];

/**
 * OpenBLAS picks its kernels from the CPU model; in a VM that hides it (this machine reports 'Prescott') it falls back
 * to SSE3 kernels. For a fair comparison, OpenBLAS (alone and under PyTorch) gets the kernels the CPU supports.
 */
function openblasEnv(simd: string): Record<string, string> {
  if (process.env.OPENBLAS_CORETYPE) return { OPENBLAS_CORETYPE: process.env.OPENBLAS_CORETYPE };
  return simd === 'avx512' ? { OPENBLAS_CORETYPE: 'SkylakeX' } : simd === 'avx2' ? { OPENBLAS_CORETYPE: 'Haswell' } : {};
}

function findTorchPython(): string | null {
  for (const py of ['python3', '/usr/bin/python3']) {
    const r = spawnSync(py, ['-c', 'import torch'], { stdio: 'ignore' });
    if (r.status === 0) return py;
  }
  return null;
}

function torchStep(py: string, c: LlamaConfig, batch: number, seq: number, steps: number, threads: number, blasEnv: Record<string, string>): unknown {
  const args = [
    join(root, 'tools', 'reference', 'torch_train_bench.py'), '--dim', c.dim, '--layers', c.nLayers, '--heads', c.nHeads,
    '--kv-heads', c.nKvHeads, '--vocab', c.vocabSize, '--hidden', ffnHiddenDim(c), '--batch', batch, '--seq', seq,
    '--steps', steps, '--threads', threads, '--eps', c.normEps, '--theta', c.ropeTheta,
  ].map(String);
  const r = spawnSync(py, args, { encoding: 'utf8', env: { ...process.env, ...blasEnv, OMP_WAIT_POLICY: 'PASSIVE', OMP_NUM_THREADS: String(threads) } });
  if (r.status !== 0) return { error: (r.stderr || '').trim().split('\n').pop() };
  return JSON.parse(r.stdout.trim().split('\n').pop() as string);
}

/** The matrix products of one training step: [label, M, K, N] with y[M,N] = x[M,K]·W[N,K]ᵀ. */
function modelShapes(name: string, c: LlamaConfig, tokens: number): [string, number, number, number][] {
  const hd = headDim(c);
  const F = ffnHiddenDim(c);
  // The output head runs in row chunks of HEAD_CHUNK_FLOATS = 1 << 23 logits (src/model/llama.ts): 262 rows for
  // vocab 32000 (the last chunk of 2048 rows has 214), the whole batch for vocab 4096.
  const headRows = Math.max(1, Math.min(tokens, Math.floor((1 << 23) / c.vocabSize)));
  const lastRows = tokens % headRows;
  const shapes: [string, number, number, number][] = [
    [`${name} wq/wo`, tokens, c.dim, c.nHeads * hd],
    [`${name} wk/wv`, tokens, c.dim, c.nKvHeads * hd],
    [`${name} w1/w3`, tokens, c.dim, F],
    [`${name} w2`, tokens, F, c.dim],
    [`${name} head chunk`, headRows, c.dim, c.vocabSize],
  ];
  if (lastRows) shapes.push([`${name} head last chunk`, lastRows, c.dim, c.vocabSize]);
  return shapes;
}

/** Median wall time of `reps` calls after one warm-up call (ms). */
function timeMedian(fn: () => void, reps: number): number {
  fn();
  const ts: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    fn();
    ts.push(performance.now() - t);
  }
  ts.sort((a, b) => a - b);
  return ts.length % 2 ? ts[(ts.length - 1) / 2] : (ts[ts.length / 2 - 1] + ts[ts.length / 2]) / 2;
}

function buildOpenblasTool(): string | null {
  const header = ['/usr/include/cblas.h', '/usr/include/x86_64-linux-gnu/cblas.h', '/usr/include/openblas/cblas.h'].some(existsSync);
  if (!header) return null;
  const out = join(mkdtempSync(join(tmpdir(), 'llama-ts-bench-')), 'openblas_sgemm');
  const r = spawnSync('cc', ['-O2', join(root, 'tools', 'reference', 'openblas_sgemm.c'), '-o', out, '-lopenblas'], { encoding: 'utf8' });
  return r.status === 0 ? out : null;
}

function sgemmTable(threads: number, blasEnv: Record<string, string>, reps: number, only: Set<string> | null): unknown[] {
  const be = createNativeBackend();
  const tool = buildOpenblasTool();
  const rows: unknown[] = [];
  const seen = new Set<string>();
  for (const cs of CASES) {
    if (only && !only.has(cs.name)) continue;
    const c = makeConfig(cs.preset, cs.overrides ?? {});
    for (const [label, M, K, N] of modelShapes(cs.name, c, cs.batch * cs.seq)) {
      const key = `${M}x${K}x${N}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const rnd = (n: number) => Float32Array.from({ length: n }, () => Math.random() - 0.5);
      const x = rnd(M * K), w = rnd(N * K), dy = rnd(M * N), out = new Float32Array(M * N), dx = new Float32Array(M * K), dw = new Float32Array(N * K);
      const f = (2 * M * N * K) / 1e6;
      const row: Record<string, unknown> = {
        shape: label, M, K, N,
        native_fwd_gflops: +(f / timeMedian(() => be.matmul(out, x, w, M, K, N), reps)).toFixed(1),
        native_dx_gflops: +(f / timeMedian(() => be.matmulBackwardInput(dx, dy, w, M, K, N), reps)).toFixed(1),
        native_dw_gflops: +(f / timeMedian(() => be.matmulBackwardWeight(dw, dy, x, M, K, N), reps)).toFixed(1),
      };
      if (tool) {
        const o = JSON.parse(execFileSync(tool, [M, K, N].map(String), { encoding: 'utf8', env: { ...process.env, ...blasEnv, OPENBLAS_NUM_THREADS: String(threads), REPS: String(reps) } }));
        row.openblas_fwd_gflops = o.fwd_gflops;
        row.openblas_dx_gflops = o.dx_gflops;
        row.openblas_dw_gflops = o.dw_gflops;
        row.native_vs_openblas = +(((row.native_fwd_gflops as number) + (row.native_dx_gflops as number) + (row.native_dw_gflops as number)) /
          (o.fwd_gflops + o.dx_gflops + o.dw_gflops)).toFixed(2);
      }
      rows.push(row);
    }
  }
  if (!tool) rows.push({ note: 'OpenBLAS not installed (apt-get install libopenblas-dev) - no comparison' });
  return rows;
}

/** Peak resident set of this process in KiB (util/memory.ts peakRssBytes: VmHWM, not inherited across exec). */
function peakKib(): number {
  return peakRssBytes() / 1024;
}

/** Child-process entry: peak RSS of one training step (mini-15m, batch 1) or of attention alone at one seq. */
function memoryChild(what: string, seq: number): void {
  const base = peakKib();
  if (what === 'attention') {
    const be = createNativeBackend();
    const H = 6, hd = 48, n = seq * H * hd;
    const bufs = Array.from({ length: 8 }, () => new Float32Array(n).fill(0.01));
    const lse = new Float32Array(H * seq);
    const before = peakKib();
    const s = { batch: 1, seq, nHeads: H, nKvHeads: H, headDim: hd };
    be.attention(bufs[0], lse, bufs[1], bufs[2], bufs[3], s);
    be.attentionBackward(bufs[4], bufs[5], bufs[6], bufs[7], bufs[1], bufs[2], bufs[3], bufs[0], lse, s);
    const after = peakKib();
    console.log(JSON.stringify({ seq, buffers_mib: +((9 * n * 4) / 2 ** 20).toFixed(2), extra_peak_kib: after - before, t_by_t_scores_would_be_mib: +((H * seq * seq * 4) / 2 ** 20).toFixed(1) }));
    return;
  }
  const c = makeConfig('mini-15m', { maxSeqLen: seq });
  const model = new Llama(c, createBackend('native'));
  model.init(1);
  const tokens = Int32Array.from({ length: seq }, (_, i) => (i * 7919) % c.vocabSize);
  model.forwardBackward(tokens, tokens, 1, seq, 1 / seq);
  console.log(JSON.stringify({ seq, peak_rss_mib: +(peakKib() / 1024).toFixed(1), start_rss_mib: +(base / 1024).toFixed(1) }));
}

function memoryTable(): unknown {
  const self = fileURLToPath(import.meta.url);
  const run = (what: string, seq: number) => JSON.parse(execFileSync(process.execPath, [self, '--memory-child', what, '--seq', String(seq)], { encoding: 'utf8' }).trim());
  const seqs = [256, 1024, 4096];
  const step = seqs.map((s) => run('step', s));
  const att = seqs.map((s) => run('attention', s));
  const perTok = (a: { peak_rss_mib: number; seq: number }, b: { peak_rss_mib: number; seq: number }) => +(((b.peak_rss_mib - a.peak_rss_mib) * 1024) / (b.seq - a.seq)).toFixed(1);
  return {
    training_step_mini15m_batch1: step,
    kib_per_token_256_to_1024: perTok(step[0], step[1]),
    kib_per_token_1024_to_4096: perTok(step[1], step[2]),
    attention_fwd_bwd_6heads_hd48: att,
    note: 'linear growth: equal KiB per token between the seq pairs; attention needs no extra memory beyond its O(seq) buffers',
  };
}

function main(): void {
  const { values } = parseArgs({
    options: {
      steps: { type: 'string', default: '3' }, only: { type: 'string' }, 'no-torch': { type: 'boolean' },
      'no-sgemm': { type: 'boolean' }, 'no-memory': { type: 'boolean' }, 'no-train': { type: 'boolean' },
      'memory-child': { type: 'string' }, seq: { type: 'string' }, 'sgemm-reps': { type: 'string', default: '11' },
    },
  });
  if (values['memory-child']) return memoryChild(values['memory-child'], Number(values.seq));
  const { addon, error } = loadNative();
  if (!addon) {
    console.log(JSON.stringify({ error: `native backend unavailable: ${error}` }));
    process.exitCode = 1;
    return;
  }
  const steps = Number(values.steps);
  const threads = addon.threads();
  const peak = measureSgemmPeak() as number;
  const report: Record<string, unknown> = {
    machine: { cpu: cpus()[0]?.model, cpus: cpus().length, threads, simd: addon.simd(), note: 'cores may be shared with other work: timings are noisy' },
    peak_gflops: +peak.toFixed(1),
    peak_source: PEAK_SOURCE,
  };
  const py = values['no-torch'] ? null : findTorchPython();
  const blasEnv = openblasEnv(addon.simd());
  report.openblas_env = blasEnv;
  if (!values['no-train']) {
    const only = values.only ? new Set(values.only.split(',')) : null;
    const train: unknown[] = [];
    for (const cs of CASES) {
      if (only && !only.has(cs.name)) continue;
      const config = makeConfig(cs.preset, { ...(cs.overrides ?? {}), maxSeqLen: Math.max(cs.seq, makeConfig(cs.preset).maxSeqLen) });
      const nat = benchTrain({ config, batch: cs.batch, seq: cs.seq, backend: createBackend('native'), steps, peakGflops: peak });
      const row: Record<string, unknown> = { case: cs.name, native: nat };
      if (py) {
        // PyTorch as installed (its OpenBLAS picks kernels from the CPU model it sees) and with OpenBLAS given the
        // kernels this CPU supports (OPENBLAS_CORETYPE): the second is the stronger baseline.
        const asIs = torchStep(py, config, cs.batch, cs.seq, steps, threads, {}) as { tokens_per_s?: number };
        const tuned = Object.keys(blasEnv).length ? (torchStep(py, config, cs.batch, cs.seq, steps, threads, blasEnv) as { tokens_per_s?: number }) : asIs;
        row.pytorch = asIs;
        row.pytorch_openblas_tuned = tuned;
        if (asIs.tokens_per_s) row.native_vs_pytorch = +(nat.tokens_per_s / asIs.tokens_per_s).toFixed(2);
        if (tuned.tokens_per_s) row.native_vs_pytorch_openblas_tuned = +(nat.tokens_per_s / tuned.tokens_per_s).toFixed(2);
      } else {
        row.pytorch = values['no-torch'] ? 'skipped (--no-torch)' : 'python3-torch not importable';
      }
      train.push(row);
      console.error(`bench: ${cs.name}: ${nat.tokens_per_s} tokens/s native` + (row.native_vs_pytorch ? `, ${row.native_vs_pytorch}x PyTorch as installed, ${row.native_vs_pytorch_openblas_tuned}x PyTorch with tuned OpenBLAS` : ''));
    }
    report.train = train;
  }
  if (!values['no-sgemm']) {
    const reps = Number(values['sgemm-reps']);
    report.sgemm_timing = `median of ${reps} calls after one warm-up, per layout (ours and OpenBLAS alike)`;
    report.sgemm = sgemmTable(threads, blasEnv, reps, values.only ? new Set(values.only.split(',')) : null);
  }
  if (!values['no-memory']) report.memory = memoryTable();
  console.log(JSON.stringify(report, null, 1));
}

main();
