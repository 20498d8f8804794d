/**
 * Distributed training under `mpirun -np 2` over TCP (test/helpers/mpi.ts), checked against one process:
 * - tensor parallel: logits, loss, every gradient shard and greedy decoding equal the whole model (1e-5 relative);
 * - data parallel: 20 steps of DP2 equal one process with --accum 2 on the same global batch (1e-5 relative), and two
 *   DP2 runs are bitwise equal; TP2 training equals one process too;
 * - ZeRO-1 (moments divided over the DP ranks) trains bitwise like plain DP2 (same weights, same moments saved), also
 *   with tensor parallelism in a 4-rank TP2×DP2 run;
 * - checkpoints are independent of the layout: saved at TP2, resumed in one process = resumed at TP2; saved at DP2,
 *   resumed in one process (the global batch kept) = the DP2 run;
 * - faults: a rank killed with SIGKILL ends the job on every rank within 30 s, the last checkpoint resumes; ranks
 *   started with different settings stop at start-up with one line.
 * Skips only when MPI is absent (CI installs it).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { root, bin, failsWithOneLine } from './helpers/cli.js';
import { mpiSkip as skip, mpirun, MPIRUN_TCP } from './helpers/mpi.js';
import { Rng } from '../src/util/rng.js';

const dir = mkdtempSync(join(tmpdir(), 'llama-ts-dist-'));
const text = join(dir, 'text.txt');
{
  const rng = new Rng(1);
  const words = 'the quick brown fox jumps over a lazy dog and then it rests in a field of green grass while birds sing'.split(' ');
  writeFileSync(text, Array.from({ length: 200 }, () => Array.from({ length: 60 }, () => words[rng.int(words.length)]).join(' ')).join('\n\n'));
}
const MODEL = ['--dim', '32', '--layers', '2', '--heads', '4', '--kv-heads', '2', '--multiple-of', '16', '--vocab', '260'];
const RUN = ['--data', text, '--batch', '2', '--seq', '32', '--warmup', '2', '--eval-every', '0', '--quiet'];
const trainArgs = (out: string, extra: string[]) => [bin, 'train', ...MODEL, ...RUN, '--steps', '20', '--ckpt-every', '10', '--out', join(dir, out), ...extra];

function ok(r: ReturnType<typeof spawnSync>, what: string): void {
  assert.equal(r.status, 0, `${what}: exit ${r.status} ${r.signal ?? ''}\n${r.stdout}\n${r.stderr}`);
}
function one(out: string, extra: string[] = []): void {
  ok(spawnSync(process.execPath, trainArgs(out, extra), { encoding: 'utf8', cwd: root }), `one process ${out}`);
}
function two(out: string, extra: string[] = [], np = 2): void {
  ok(mpirun(np, [process.execPath, ...trainArgs(out, extra)]), `mpirun -np ${np} ${out}`);
}
const file = (out: string, name: string) => readFileSync(join(dir, out, 'checkpoints', 'step-00000020', name));
function resume(out: string, np: 1 | 2, extra: string[] = []): void {
  const args = [bin, 'train', '--out', join(dir, out), '--resume', '--data', text, '--quiet', ...extra];
  ok(np === 1 ? spawnSync(process.execPath, args, { encoding: 'utf8', cwd: root }) : mpirun(2, [process.execPath, ...args]), `resume ${out}`);
}
function losses(out: string): number[] {
  return readFileSync(join(dir, out, 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((r) => 'loss' in r).map((r) => r.loss as number);
}
function sameCurve(got: number[], want: number[], what: string, rel = 1e-5): void {
  assert.equal(got.length, want.length, `${what}: steps`);
  got.forEach((g, i) => assert.ok(Math.abs(g - want[i]) <= rel * Math.abs(want[i]), `${what}: step ${i + 1} loss ${g} vs ${want[i]}`));
}

test('tensor parallel (+ sequence parallel, + recompute): the split model computes the whole model (logits, loss, every gradient, greedy decode; ref and native)', { skip, timeout: 120_000 }, () => {
  const r = mpirun(2, [process.execPath, join(root, 'dist', 'test', 'helpers', 'tp-worker.js'), 'ref', 'native']);
  ok(r, 'tp-worker');
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { rank: number; worstRelative: Record<string, number> });
  assert.deepEqual(lines.map((l) => l.rank).sort(), [0, 1]);
  for (const l of lines) {
    assert.deepEqual(Object.keys(l.worstRelative).sort(), ['native', 'native+sp', 'native+sp+full', 'native+sp+selective', 'ref', 'ref+sp', 'ref+sp+full', 'ref+sp+selective']);
    for (const [k, v] of Object.entries(l.worstRelative)) assert.ok(v <= 1e-5, `${k}: ${v}`);
  }
});

test('data parallel: DP2 equals one process with --accum 2 (1e-5); two DP2 runs are bitwise equal; TP2 and TP2+SP equal one process', { skip, timeout: 300_000 }, () => {
  one('one', ['--accum', '2']);
  two('dp2a');
  two('dp2b');
  two('tp2', ['--tp', '2', '--accum', '2']);
  two('tp2sp', ['--tp', '2', '--sp', '--accum', '2']);
  const ref = losses('one');
  assert.equal(ref.length, 20);
  sameCurve(losses('dp2a'), ref, 'DP2 vs --accum 2');
  assert.deepEqual(losses('dp2b'), losses('dp2a'), 'two DP2 runs');
  sameCurve(losses('tp2'), ref, 'TP2 vs one process');
  sameCurve(losses('tp2sp'), ref, 'TP2+SP (accumulating over 2 micro-batches) vs one process');
  // only rank 0 writes the run: one log line per step, one checkpoint directory per save
  assert.deepEqual(readdirSync(join(dir, 'dp2a', 'checkpoints')).sort(), ['latest', 'step-00000010', 'step-00000020']);
});

test('ZeRO-1 equals unsharded data parallelism bitwise (weights and AdamW moments); TP2×DP2 with ZeRO-1 equals one process', { skip, timeout: 300_000 }, () => {
  if (!existsSync(join(dir, 'dp2a'))) two('dp2a');
  two('z1', ['--zero', '1']);
  assert.deepEqual(losses('z1'), losses('dp2a'));
  assert.ok(file('z1', 'model.safetensors').equals(file('dp2a', 'model.safetensors')), 'same weights');
  assert.ok(file('z1', 'optimizer.safetensors').equals(file('dp2a', 'optimizer.safetensors')), 'same moments');
  if (!existsSync(join(dir, 'one'))) one('one', ['--accum', '2']);
  two('tp2dp2z1', ['--tp', '2', '--zero', '1'], 4);
  sameCurve(losses('tp2dp2z1'), losses('one'), 'TP2×DP2 ZeRO-1 vs one process');
});

test('checkpoints do not depend on the layout: TP2 → one process = TP2 → TP2; DP2 → one process keeps the global batch', { skip, timeout: 300_000 }, () => {
  two('s0', ['--tp', '2', '--stop-at', '10']);
  cpSync(join(dir, 's0'), join(dir, 's-tp2'), { recursive: true });
  cpSync(join(dir, 's0'), join(dir, 's-one'), { recursive: true });
  resume('s-tp2', 2, ['--tp', '2']);
  resume('s-one', 1);
  sameCurve(losses('s-one').slice(10), losses('s-tp2').slice(10), 'resumed in one process vs at TP2');
  two('d0', ['--stop-at', '10']);
  resume('d0', 1);
  if (existsSync(join(dir, 'dp2a'))) sameCurve(losses('d0'), losses('dp2a'), 'DP2 saved, resumed in one process, vs DP2 throughout');
  const state = JSON.parse(readFileSync(join(dir, 's0', 'checkpoints', 'step-00000010', 'state.json'), 'utf8'));
  assert.deepEqual(state.layout, { tp: 2, dp: 1 });
});

test('faults: ranks started with different settings stop at start-up with one line', { skip, timeout: 120_000 }, () => {
  const a = trainArgs('mismatch', []);
  const r = spawnSync('mpirun', [...MPIRUN_TCP, '-np', '1', process.execPath, ...a, ':', '-np', '1', process.execPath, ...a, '--lr', '0.01'], { encoding: 'utf8', cwd: root, timeout: 90_000 });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /llama-ts: error: rank 1 differs from rank 0 in its settings: every rank must run the same command on the same data/);
  assert.doesNotMatch(r.stderr, /internal error|at .*\.js:\d+/);
});

test('faults: kill -9 of one rank ends the job on every rank within 30 s; the last checkpoint resumes', { skip, timeout: 180_000 }, async () => {
  const out = join(dir, 'killed');
  const args = [...MPIRUN_TCP, '-np', '2', process.execPath, bin, 'train', ...MODEL, ...RUN, '--steps', '100000', '--ckpt-every', '5', '--out', out];
  const job = spawn('mpirun', args, { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  job.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((res) => job.on('exit', (code) => res(code)));
  const t0 = Date.now();
  while (!existsSync(join(out, 'checkpoints', 'latest'))) {
    if (Date.now() - t0 > 90_000) {
      job.kill('SIGKILL');
      assert.fail(`no checkpoint after 90 s\n${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const ranks = spawnSync('pgrep', ['-f', '--', `--out ${out}$`], { encoding: 'utf8' }).stdout.trim().split('\n').map(Number).filter((p) => p !== job.pid);
  assert.ok(ranks.length >= 2, `rank processes: ${ranks}`);
  const victim = ranks[ranks.length - 1];
  const tKill = Date.now();
  process.kill(victim, 'SIGKILL');
  const code = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 30_000))]);
  if (code === 'timeout') job.kill('SIGKILL');
  assert.notEqual(code, 'timeout', `the job still ran 30 s after a rank was killed\n${stderr}`);
  assert.notEqual(code, 0);
  const left = spawnSync('pgrep', ['-f', '--', `--out ${out}$`], { encoding: 'utf8' }).stdout.trim();
  assert.equal(left, '', 'every rank process has ended');
  const ended = (Date.now() - tKill) / 1000;
  const r = spawnSync(process.execPath, [bin, 'train', '--out', out, '--resume', '--data', text, '--steps', String(readLatestStep(out) + 2), '--quiet'], { encoding: 'utf8', cwd: root });
  ok(r, `resume after the kill (job ended ${ended.toFixed(1)} s after it)`);
});

function readLatestStep(out: string): number {
  const name = readFileSync(join(out, 'checkpoints', 'latest'), 'utf8').trim();
  return JSON.parse(readFileSync(join(out, 'checkpoints', name, 'state.json'), 'utf8')).step;
}

test('bench train under mpirun: aggregate tokens/s, exposed communication, and the bytes plan cluster predicts (within 10%)', { skip, timeout: 180_000 }, () => {
  const tiny = ['--dim', '64', '--layers', '8', '--heads', '4', '--kv-heads', '2', '--multiple-of', '16', '--vocab', '256', '--seq', '32'];
  for (const layout of [[], ['--tp', '2'], ['--tp', '2', '--sp'], ['--zero', '1']]) {
    const r = mpirun(2, [process.execPath, bin, 'bench', 'train', ...tiny, '--batch', '2', '--steps', '3', ...layout]);
    ok(r, `bench train ${layout.join(' ')}`);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 1, 'rank 0 alone prints the report');
    const j = JSON.parse(lines[0]);
    assert.equal(j.bench, 'train-distributed');
    assert.equal(j.ranks, 2);
    assert.ok(j.tokens_per_s > 0 && j.phase_ms.comm >= 0 && j.exposed_comm_fraction >= 0 && j.exposed_comm_fraction < 1);
    for (const k of ['tp', 'dp'] as const) {
      if (j.plan_cluster_bytes_per_step[k] === 0) assert.equal(j.bytes_sent_per_step_rank0[k], 0, `${layout.join(' ')}: no ${k} traffic expected`);
      else assert.ok(Math.abs(j.measured_over_predicted[k] - 1) <= 0.1, `${layout.join(' ')}: ${k} bytes ${j.bytes_sent_per_step_rank0[k]} vs predicted ${j.plan_cluster_bytes_per_step[k]}`);
    }
    assert.ok(j.memory_bytes_rank0.activations > 0);
    for (const k of ['weights', 'gradients', 'optimizer', 'activations']) assert.ok(j.plan_cluster_memory_bytes[k] > 0, `planner's ${k}`);
    assert.equal(j.plan_cluster_memory_bytes.gradients, j.memory_bytes_rank0.gradients, 'fp32 gradients of the same shard on both sides');
  }
});

test('layout flags without the ranks they need: one line each', () => {
  const base = ['train', ...MODEL, ...RUN, '--steps', '2', '--out', join(dir, 'flags')];
  failsWithOneLine([...base, '--tp', '2'], /--tp 2 splits the model over 2 processes: run under mpirun -np 2/);
  failsWithOneLine([...base, '--sp'], /--sp divides rows among the tensor-parallel ranks: give --tp 2 or more/);
  failsWithOneLine([...base, '--zero', '2'], /--zero must be 0 or 1/);
  assert.ok(!existsSync(join(dir, 'flags', 'checkpoints')), 'nothing written');
});
