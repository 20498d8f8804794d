import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getPreset, makeConfig, paramCount, trainFlopsPerToken, type LlamaConfig } from '../src/model/config.js';
import { UserError } from '../src/util/errors.js';
import { GPUS, getGpu, mergeGpuTable } from '../src/plan/gpus.js';
import { activationBytes } from '../src/plan/activations.js';
import { activationLayoutBytes } from '../src/model/llama.js';
import {
  RECOMPUTE,
  memoryPerGpu,
  ring,
  searchLayouts,
  simulate,
  simulateOrRefuse,
  type Job,
  type Layout,
} from '../src/plan/cluster.js';

const within = (x: number, target: number, tol: number) => Math.abs(x - target) / target <= tol;
const layout = (l: Partial<Layout>): Layout => ({ tp: 1, pp: 1, dp: 1, sp: false, microBatch: 1, recompute: 'selective', zero: 0, interleave: 1, ...l });

// Korthikanti et al. 2022, Table 3: the 530B GPT model (a 128, h 20480, L 105, V 51200, s 2048), trained with
// t 8, p 35 on 2240 A100-80GB (so d 8) — the abstract's setting.
const GPT530B: LlamaConfig = makeConfig({ dim: 20480, nLayers: 105, nHeads: 128, vocabSize: 51200, maxSeqLen: 2048 });
const job530 = (): Job => ({ config: GPT530B, seqLen: 2048, globalBatch: 2240, gpus: 2240, gpuName: 'A100-80GB', gpu: getGpu('A100-80GB') });

// Touvron et al. 2023, §2.4: 65.2B model, seq 2048, 4M-token batches, 2048 A100-80GB, 380 tokens/s/GPU, ~21 days
// for 1.4T tokens, with model and sequence parallelism and selective activation checkpointing. The paper gives no
// micro-batch size or sharding; we assume micro-batch 1 and optimizer-state sharding (ZeRO-1).
const job65 = (): Job => ({
  config: getPreset('llama-65b'),
  seqLen: 2048,
  globalBatch: 2 ** 22 / 2048,
  gpus: 2048,
  gpuName: 'A100-80GB',
  gpu: getGpu('A100-80GB'),
  trainTokens: 1.4e12,
});
const llamaLayout = layout({ tp: 8, dp: 256, sp: true, recompute: 'selective', zero: 1 });

test("activation memory: the closed form is what llama-ts allocates, for each policy, precision and parallel layout", () => {
  const configs = [
    getPreset('mini-42m'),
    makeConfig({ dim: 32, nLayers: 3, nHeads: 4, nKvHeads: 2, vocabSize: 64, multipleOf: 16, maxSeqLen: 24 }),
    makeConfig({ dim: 48, nLayers: 2, nHeads: 6, nKvHeads: 3, vocabSize: 300000, multipleOf: 32, maxSeqLen: 64 }), // head in blocks
  ];
  for (const c of configs) {
    for (const [batch, seq] of [[2, 12], [1, 24], [3, 64]]) {
      for (const tp of [1, 2]) {
        for (const sp of [false, true]) {
          for (const recompute of RECOMPUTE) {
            for (const dtype of ['f32', 'bf16'] as const) {
              const o = { tp, sp, recompute, dtype };
              assert.equal(activationBytes(c, { batch, seq, ...o }).total, activationLayoutBytes(c, batch, seq, o), JSON.stringify({ dim: c.dim, batch, seq, ...o }));
            }
          }
        }
      }
    }
  }
  // below Korthikanti et al.'s GPT block (Table 2, 16-bit): no s×s scores, no dropout masks
  const [s, b, h, a, t] = [2048, 1, 20480, 128, 8];
  const ours = activationBytes(GPT530B, { batch: b, seq: s, tp: t, sp: true, recompute: 'none', dtype: 'bf16' }).perLayer;
  assert.ok(ours < s * b * h * (34 / t + (5 * a * s) / (h * t)));
});

test('530B layout: first-stage activations are L layers worth (Korthikanti §4.2.3) plus one workspace, other memory from the parameters', () => {
  const job = job530();
  const [s, b, h, L, t, p] = [2048, 1, 20480, 105, 8, 35];
  const sel = memoryPerGpu(job, layout({ tp: t, pp: p, dp: 8, sp: true, recompute: 'selective' }));
  assert.equal(sel.stage, 'first');
  const act = activationBytes(GPT530B, { batch: b, seq: s, tp: t, sp: true, recompute: 'selective', dtype: 'bf16' });
  assert.ok(within(sel.activations, act.perLayer * L + act.workspace, 1e-12), `${sel.activations}`);
  const full = memoryPerGpu(job, layout({ tp: t, pp: p, dp: 8, recompute: 'full' }));
  const actFull = activationBytes(GPT530B, { batch: b, seq: s, tp: t, recompute: 'full', dtype: 'bf16' });
  assert.equal(actFull.perLayer, 4 * s * b * h, 'full recompute keeps each layer input, float32');
  assert.ok(within(full.activations, actFull.perLayer * L + actFull.workspace, 1e-12));
  // Weights on the first stage: 3 layers' matrices split 8 ways, replicated norms, the vocab-parallel embedding.
  const layerMatrices = 4 * h * h + 3 * h * 54784;
  const params = 3 * (layerMatrices / t + 2 * h) + (51200 * h) / t;
  assert.ok(within(sel.weights, 2 * params, 1e-12));
  assert.ok(within(sel.gradients, 4 * params, 1e-12));
  assert.ok(within(sel.optimizer, 12 * params, 1e-12), 'ZeRO 0: full optimizer state');
  assert.ok(sel.total < sel.usable && full.total < full.usable);
});

test('530B: MFU with selective recomputation vs full recomputation (54.2% vs 42.1%) within ±15% and in direction', () => {
  const job = job530();
  const sel = simulateOrRefuse(job, layout({ tp: 8, pp: 35, dp: 8, sp: true, recompute: 'selective' }));
  const full = simulateOrRefuse(job, layout({ tp: 8, pp: 35, dp: 8, sp: false, recompute: 'full' }));
  assert.ok(within(sel.mfu, 0.542, 0.15), `selective MFU ${sel.mfu}`);
  assert.ok(within(full.mfu, 0.421, 0.15), `full MFU ${full.mfu}`);
  assert.ok(sel.mfu > full.mfu);
  // Full recomputation re-runs every layer's forward: HFU/MFU is close to 4/3; selective only the attention core.
  assert.ok(full.hfu / full.mfu > 1.3 && full.hfu / full.mfu < 4 / 3);
  assert.ok(sel.hfu / sel.mfu > 1 && sel.hfu / sel.mfu < 1.03);
});

test('LLaMA-65B on 2048 A100-80GB: within ±15% of 380 tokens/s/GPU and 21 days for 1.4T tokens', () => {
  const job = job65();
  const eff = job.gpu.matmulEfficiency;
  assert.ok(eff >= 0.5 && eff <= 0.8, `efficiency ${eff} should be a physically plausible fraction of peak`);
  const r = simulateOrRefuse(job, llamaLayout);
  assert.ok(within(r.tokensPerSecPerGpu, 380, 0.15), `${r.tokensPerSecPerGpu} tokens/s/GPU`);
  assert.ok(within(r.days!, 21, 0.15), `${r.days} days`);
  assert.ok(r.days! === 1.4e12 / (r.tokensPerSecPerGpu * 2048) / 86400);
  assert.ok(r.fits);
});

test('step time decomposes and MFU is consistent with trainFlopsPerToken', () => {
  const job = job65();
  const r = simulate(job, llamaLayout);
  const t = r.timing;
  assert.equal(t.microBatches, 8);
  assert.ok(within(t.step, t.stepCompute + t.stepRecompute + t.stepComm + t.bubble, 1e-12));
  assert.equal(t.bubble, 0, 'no pipeline, no bubble');
  assert.equal(r.modelFlopsPerToken, trainFlopsPerToken(job.config, 2048));
  const peak = 312e12;
  assert.ok(within(r.mfu * peak * 2048 * t.step, trainFlopsPerToken(job.config, 2048) * 2 ** 22, 1e-12));
  // Compute per micro-batch: the micro-batch's FLOPs (plus the attention core recomputed) over tp GPUs at peak × efficiency.
  const c = job.config;
  const flops = 2048 * (trainFlopsPerToken(c, 2048) + c.nLayers * 4 * c.dim * 2048);
  assert.ok(within(t.compute + t.recompute, flops / 8 / (peak * job.gpu.matmulEfficiency), 1e-12));
  // Tensor-parallel traffic: 4 all-reduce equivalents of s·b·h bf16 per layer over NVLink, exposed.
  const act = 2048 * c.dim * 2;
  assert.ok(within(t.tpComm, (80 * 4 * ring.allReduce(act, 8)) / 300e9, 1e-12));
  // Data-parallel: reduce-scatter + all-gather of bf16 gradients, partly hidden behind compute.
  assert.ok(t.dpCommExposed > 0 && t.dpCommExposed < t.dpCommTotal);
});

test('pipeline bubble follows (p−1)/(v·m) and interleaving shrinks it', () => {
  const job = job530();
  const plain = simulate(job, layout({ tp: 8, pp: 35, dp: 8, sp: true }));
  const perMb = plain.timing.compute + plain.timing.recompute + plain.timing.tpComm + plain.timing.ppComm;
  assert.ok(within(plain.timing.bubble, 34 * perMb, 1e-12));
  const job2: Job = { ...job, config: makeConfig({ ...GPT530B, nLayers: 140 }), globalBatch: 2240 };
  const a = simulate(job2, layout({ tp: 8, pp: 35, dp: 8, sp: true, interleave: 1 }));
  const b = simulate(job2, layout({ tp: 8, pp: 35, dp: 8, sp: true, interleave: 4 }));
  assert.ok(b.timing.bubble < a.timing.bubble / 3);
  assert.ok(b.memory.activations > a.memory.activations, 'interleaving keeps more micro-batches in flight');
});

test('recomputation trades memory for time in the expected order', () => {
  const job = job65();
  const r = (rc: Layout['recompute']) => simulate(job, { ...llamaLayout, recompute: rc });
  const [none, sel, full] = [r('none'), r('selective'), r('full')];
  assert.ok(none.memory.activations > sel.memory.activations && sel.memory.activations > full.memory.activations);
  assert.ok(none.timing.step < sel.timing.step && sel.timing.step < full.timing.step);
  assert.ok(none.mfu > sel.mfu && sel.mfu > full.mfu);
  assert.equal(none.hfu, none.mfu);
});

test('optimizer-state sharding divides the right terms by dp', () => {
  const job = job65();
  const z0 = memoryPerGpu(job, { ...llamaLayout, zero: 0 });
  const z1 = memoryPerGpu(job, { ...llamaLayout, zero: 1 });
  const z2 = memoryPerGpu(job, { ...llamaLayout, zero: 2 });
  const z3 = memoryPerGpu(job, { ...llamaLayout, zero: 3 });
  assert.ok(within(z1.optimizer, z0.optimizer / 256, 1e-12) && z1.gradients === z0.gradients);
  assert.ok(within(z2.gradients, z0.gradients / 256, 1e-12) && z2.weights === z0.weights);
  assert.ok(within(z3.weights, z0.weights / 256, 1e-12));
  // Without sharding the 65B model does not fit 8-way on 80 GB: 18 bytes × 65B / 8 ≈ 137 GiB.
  assert.ok(within(z0.weights + z0.gradients + z0.optimizer, (18 * (paramCount(job.config) - 80 * 2 * 8192 - 8192)) / 8 + 18 * (80 * 2 * 8192 + 8192), 1e-12));
  assert.throws(() => simulateOrRefuse(job, { ...llamaLayout, zero: 0 }), (e) => e instanceof UserError && /does not fit/.test(e.message));
});

test('layouts that do not divide heads, layers, GPUs or the batch are refused with a clear message', () => {
  const job = job65();
  const bad = (l: Partial<Layout>, re: RegExp, j: Job = job) =>
    assert.throws(() => simulate(j, { ...llamaLayout, ...l }), (e) => e instanceof UserError && re.test(e.message) && !e.message.includes('\n'));
  bad({ tp: 3, dp: 682 }, /does not divide the 64 attention heads/);
  bad({ tp: 8, pp: 3 }, /does not divide the 80 layers/);
  bad({ tp: 8, dp: 255 }, /does not equal the GPU count 2048/);
  bad({ tp: 8, pp: 1, dp: 128 }, /does not equal the GPU count/);
  bad({ tp: 8, dp: 256, microBatch: 3 }, /not divisible into micro-batches of 3/);
  bad({ tp: 1, dp: 2048, sp: true }, /sequence parallelism needs tensor parallelism/);
  bad({ tp: 8, pp: 1, dp: 256, interleave: 2 }, /interleaved schedule needs pipeline/);
  bad({ tp: 8, dp: 200 }, /GPU count 2000 is not divisible|does not equal/, { ...job, gpus: 2000 });
  bad({ tp: 8, dp: 125 }, /GPU count 1001 is not divisible by tp×pp = 8×1/, { ...job, gpus: 1001 });
  bad({ tp: 8, dp: 256 }, /tensor-parallel degree 8 does not divide the 52 attention heads/, { ...job, config: getPreset('llama-33b') });
});

test('layout search: every result divides and fits, sorted by throughput, and beats or matches the paper layout', () => {
  const job = job65();
  const found = searchLayouts(job);
  assert.ok(found.length > 10);
  for (const r of found) {
    assert.equal(r.layout.tp * r.layout.pp * r.layout.dp, 2048);
    assert.ok(r.fits && r.memory.total <= r.memory.usable);
  }
  for (let i = 1; i < found.length; i++) assert.ok(found[i - 1]!.tokensPerSecPerGpu >= found[i]!.tokensPerSecPerGpu);
  assert.ok(found[0]!.tokensPerSecPerGpu >= simulate(job, llamaLayout).tokensPerSecPerGpu);
  // On 8 × 40 GB GPUs the 65B model fits no layout.
  assert.equal(searchLayouts({ ...job, gpus: 8, globalBatch: 64, gpu: getGpu('A100-40GB') }).length, 0);
});

test('faster GPUs and more bandwidth give more throughput; the table is extensible', () => {
  const job = job65();
  const a100 = simulate(job, llamaLayout);
  const h100 = simulate({ ...job, gpu: getGpu('H100-SXM'), gpuName: 'H100-SXM' }, llamaLayout);
  assert.ok(h100.tokensPerSecPerGpu > a100.tokensPerSecPerGpu);
  const table = mergeGpuTable({
    'A100-80GB': { interNodeGBps: 50 },
    'B-test': { peakTflops: 2000, memoryGiB: 192, intraNodeGBps: 900, interNodeGBps: 100, gpusPerNode: 8, matmulEfficiency: 0.6 },
  });
  assert.equal(table['A100-80GB']!.peakTflops, 312);
  assert.equal(GPUS['A100-80GB']!.interNodeGBps, 25, 'built-in table untouched');
  const faster = simulate({ ...job, gpu: table['A100-80GB']! }, llamaLayout);
  assert.ok(faster.timing.dpCommExposed < a100.timing.dpCommExposed);
  assert.ok(simulate({ ...job, gpu: table['B-test']! }, llamaLayout).tokensPerSecPerGpu > h100.tokensPerSecPerGpu);
  assert.throws(() => mergeGpuTable({ X: { peakTflops: 1 } }), /missing/);
  assert.throws(() => mergeGpuTable({ 'A100-80GB': { tflops: 1 } }), /unknown field 'tflops'/);
  assert.throws(() => mergeGpuTable({ 'A100-80GB': { matmulEfficiency: 1.5 } }), /at most 1/);
  assert.throws(() => mergeGpuTable([]), UserError);
  assert.throws(() => getGpu('V100'), (e) => e instanceof UserError && /unknown GPU type 'V100'/.test(e.message));
});
