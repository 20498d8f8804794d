/**
 * Cluster simulator: memory per GPU and step time of a 3-D parallel (tensor × pipeline × data) training run.
 *
 * Memory (per GPU, the busiest pipeline stage):
 *  - weights bf16 (2 B/param), gradients accumulated in fp32 (4 B/param, Megatron-LM's main-grad buffer),
 *    optimizer fp32 master weights + Adam m and v (12 B/param). Optimizer-state sharding across data-parallel
 *    ranks (ZeRO, Rajbhandari et al. 2020): stage 1 shards the 12 B, stage 2 also the gradients, stage 3 also the
 *    weights. Layer matrices and the (vocab-parallel) embedding and output head are split over the tensor-parallel
 *    group; norm weights are replicated.
 *  - activations: llama-ts's own implementation as a closed form (plan/activations.ts, equal to what `Llama`
 *    allocates; a test holds them together), with bf16 mixed precision (--dtype bf16: the matmul inputs kept in
 *    bfloat16, the residual stream and per-row statistics in float32), for the layout's recompute policy, tensor and
 *    sequence parallelism. Attention keeps its log-sum-exp, never the s×s scores, and there is no dropout, so this is
 *    well below Korthikanti et al. 2022's Table 2 for a GPT block (s·b·h·(34 + 5·a·s/h) bytes a layer without
 *    parallelism). With 1F1B pipelining the first stage holds min(p, m) micro-batches in flight, so it stores L
 *    layers' worth (Korthikanti §4.2.3); the interleaved schedule multiplies that by 1 + (p−1)/(p·v). Each stage
 *    also holds one workspace (shared buffers, backward scratch, the head's logits block), the last stage the final
 *    norm's saved input and output.
 *  - a fixed reserve (CUDA context, communication buffers, allocator fragmentation) is taken off device memory.
 *
 * Time (per optimizer step):
 *  - FLOPs per token per layer: 6·P_layer (matrix products) + 12·h·s (attention scores and mixing, PaLM appendix B
 *    convention); the output head adds 6·V·h. This is `trainFlopsPerToken` of the model config, summed over layers.
 *  - recompute: selective recomputes the forward of the attention core (Q·Kᵀ, softmax, ·V): 4·h·s per token per
 *    layer; full recomputes each layer's forward: 2·P_layer + 4·h·s (Korthikanti §5). The output head is not
 *    recomputed.
 *  - compute and recompute run at peak × matmulEfficiency (the one calibrated parameter, see gpus.ts).
 *  - tensor-parallel communication, ring collectives of the s·b·h activation (2 bytes): per layer 2 all-reduces
 *    forward and 2 backward (with sequence parallelism 4 all-gathers + 4 reduce-scatters, the same volume); full
 *    recomputation repeats the forward ones. A ring all-reduce moves 2·(t−1)/t of the tensor per GPU, an
 *    all-gather or reduce-scatter (t−1)/t. Overlap model: exposed (it is on the critical path in Megatron-LM).
 *  - pipeline: point-to-point send of the stage output forward and its gradient backward per micro-batch
 *    (s·b·h·2/t bytes each, scatter-gather optimisation), exposed; bubble: the 1F1B schedule takes
 *    (m + (p−1)/v) micro-batch slots of the slowest stage (Narayanan et al. 2021).
 *  - data parallel, once per step, gradients reduced in bf16: all-reduce 2·(d−1)/d·G (ZeRO 0), or reduce-scatter
 *    + all-gather of the updated weights, (d−1)/d·G each (ZeRO 1/2). Overlap model: the gradient reduction is
 *    bucketed and overlaps the backward pass of the last micro-batch; the weight all-gather overlaps the forward
 *    pass of the next step's first micro-batch; only the excess is exposed. ZeRO 3 gathers the weights for the
 *    forward and the backward of every micro-batch and reduce-scatters its gradients; these overlap that
 *    micro-batch's compute, the excess is exposed.
 *  - bandwidth: the tensor-parallel group uses NVLink if it fits in a node; pipeline neighbours and data-parallel
 *    peers use the network once the groups span nodes (placement: tensor innermost, then pipeline, then data).
 *  - the optimizer update and the embedding lookup are not timed (bandwidth-bound and small).
 */
import { ffnHiddenDim, layerParamCount, trainFlopsPerToken, type LlamaConfig } from '../model/config.js';
import { RECOMPUTE_POLICIES, type Recompute } from '../model/llama.js';
import { UserError } from '../util/errors.js';
import { activationBytes } from './activations.js';
import type { GpuSpec } from './gpus.js';

/** The activation-recompute policies are the model's own (Llama's `recompute`). */
export type { Recompute };
export const RECOMPUTE: readonly Recompute[] = RECOMPUTE_POLICIES;

export interface Layout {
  tp: number;
  pp: number;
  dp: number;
  /** Sequence parallelism (needs tp > 1). */
  sp: boolean;
  microBatch: number;
  recompute: Recompute;
  /** Optimizer-state sharding over data-parallel ranks (ZeRO stage 0-3). */
  zero: 0 | 1 | 2 | 3;
  /** Virtual pipeline stages per GPU (interleaved 1F1B); 1 = plain 1F1B. */
  interleave: number;
}

export interface Job {
  config: LlamaConfig;
  seqLen: number;
  /** Global batch in sequences. */
  globalBatch: number;
  gpus: number;
  gpuName: string;
  gpu: GpuSpec;
  /** Tokens to train on, for the days estimate (optional). */
  trainTokens?: number;
}

export const BYTES = { weight: 2, grad: 4, optimizer: 12, activation: 2, gradReduce: 2 } as const;
/** Device memory held back for the CUDA context, NCCL buffers and fragmentation. */
export const RESERVE_GIB = 2;
const GIB = 2 ** 30;

export interface Memory {
  weights: number;
  gradients: number;
  optimizer: number;
  activations: number;
  /** Per-layer activation bytes for one micro-batch (plan/activations.ts). */
  perLayerActivations: number;
  total: number;
  usable: number;
  stage: 'first' | 'last' | 'only';
}

export interface Timing {
  microBatches: number;
  /** Per micro-batch on the slowest stage, seconds. */
  compute: number;
  recompute: number;
  tpComm: number;
  ppComm: number;
  /** Per step, seconds: pipeline fill/drain idle time, (p−1)/v micro-batch slots. */
  bubble: number;
  dpCommTotal: number;
  dpCommExposed: number;
  step: number;
  /** Per step, split so that step = stepCompute + stepRecompute + stepComm + bubble. */
  stepCompute: number;
  stepRecompute: number;
  stepComm: number;
}

export interface Simulation {
  layout: Layout;
  memory: Memory;
  fits: boolean;
  timing: Timing;
  tokensPerStep: number;
  tokensPerSecPerGpu: number;
  mfu: number;
  hfu: number;
  modelFlopsPerToken: number;
  days: number | null;
}

function divisors(n: number): number[] {
  const out: number[] = [];
  for (let i = 1; i <= n; i++) if (n % i === 0) out.push(i);
  return out;
}

/** Refuse layouts that do not divide the model, the GPUs or the batch; one clear line each. */
export function checkLayout(job: Job, l: Layout): void {
  const c = job.config;
  const posInt = (v: number, name: string) => {
    if (!Number.isInteger(v) || v < 1) throw new UserError(`${name} must be a positive integer, got ${v}`);
  };
  posInt(l.tp, 'tensor-parallel degree');
  posInt(l.pp, 'pipeline degree');
  posInt(l.dp, 'data-parallel degree');
  posInt(l.microBatch, 'micro-batch size');
  posInt(l.interleave, 'interleave');
  posInt(job.gpus, 'GPU count');
  posInt(job.seqLen, 'sequence length');
  posInt(job.globalBatch, 'global batch');
  if (!RECOMPUTE.includes(l.recompute)) throw new UserError(`unknown recompute policy '${l.recompute}' (none, selective, full)`);
  if (![0, 1, 2, 3].includes(l.zero)) throw new UserError(`ZeRO stage must be 0, 1, 2 or 3, got ${l.zero}`);
  if (c.nHeads % l.tp !== 0) throw new UserError(`tensor-parallel degree ${l.tp} does not divide the ${c.nHeads} attention heads`);
  if (c.nKvHeads % l.tp !== 0) throw new UserError(`tensor-parallel degree ${l.tp} does not divide the ${c.nKvHeads} key/value heads`);
  if (ffnHiddenDim(c) % l.tp !== 0) throw new UserError(`tensor-parallel degree ${l.tp} does not divide the FFN hidden size ${ffnHiddenDim(c)}`);
  if (l.sp && l.tp === 1) throw new UserError('sequence parallelism needs tensor parallelism (tp > 1)');
  if (l.sp && job.seqLen % l.tp !== 0) throw new UserError(`sequence length ${job.seqLen} is not divisible by tp ${l.tp} (sequence parallelism)`);
  if (c.nLayers % (l.pp * l.interleave) !== 0) {
    const what = l.interleave > 1 ? `pp×interleave = ${l.pp}×${l.interleave}` : `pipeline degree ${l.pp}`;
    throw new UserError(`${what} does not divide the ${c.nLayers} layers`);
  }
  if (job.gpus % (l.tp * l.pp) !== 0) throw new UserError(`GPU count ${job.gpus} is not divisible by tp×pp = ${l.tp}×${l.pp}`);
  if (l.tp * l.pp * l.dp !== job.gpus) {
    throw new UserError(`tp×pp×dp = ${l.tp}×${l.pp}×${l.dp} = ${l.tp * l.pp * l.dp} does not equal the GPU count ${job.gpus}`);
  }
  if (job.globalBatch % (l.dp * l.microBatch) !== 0) {
    throw new UserError(
      `global batch of ${job.globalBatch} sequences is not divisible into micro-batches of ${l.microBatch} on ${l.dp} data-parallel ranks`,
    );
  }
  const m = job.globalBatch / (l.dp * l.microBatch);
  if (l.interleave > 1) {
    if (l.pp === 1) throw new UserError('the interleaved schedule needs pipeline parallelism (pp > 1)');
    if (m % l.pp !== 0) throw new UserError(`the interleaved schedule needs the ${m} micro-batches per step to be a multiple of pp ${l.pp}`);
  }
}

interface StageShape {
  layers: number;
  embedding: boolean;
  head: boolean;
}

function stages(c: LlamaConfig, l: Layout): { name: Memory['stage']; shape: StageShape }[] {
  const layers = c.nLayers / l.pp;
  if (l.pp === 1) return [{ name: 'only', shape: { layers, embedding: true, head: true } }];
  return [
    { name: 'first', shape: { layers, embedding: true, head: false } },
    { name: 'last', shape: { layers, embedding: false, head: true } },
  ];
}

/** Parameters one GPU of a stage holds: matrices split over tp, norms replicated. */
function stageParamsPerGpu(c: LlamaConfig, l: Layout, st: StageShape): number {
  const norms = 2 * c.dim;
  const layerMatrices = layerParamCount(c) - norms;
  let p = st.layers * (layerMatrices / l.tp + norms);
  if (st.embedding) p += (c.vocabSize * c.dim) / l.tp;
  if (st.head) p += (c.vocabSize * c.dim) / l.tp + c.dim;
  return p;
}

function stageMemory(job: Job, l: Layout, name: Memory['stage'], st: StageShape): Memory {
  const c = job.config;
  const params = stageParamsPerGpu(c, l, st);
  const d = l.dp;
  const weights = (params * BYTES.weight) / (l.zero >= 3 ? d : 1);
  const gradients = (params * BYTES.grad) / (l.zero >= 2 ? d : 1);
  const optimizer = (params * BYTES.optimizer) / (l.zero >= 1 ? d : 1);
  const act = activationBytes(c, { batch: l.microBatch, seq: job.seqLen, tp: l.tp, sp: l.sp, recompute: l.recompute, dtype: 'bf16' });
  const perLayer = act.perLayer;
  const m = job.globalBatch / (l.dp * l.microBatch);
  // 1F1B: the first stage keeps min(p, m) micro-batches in flight, the last stage one.
  let inFlight = st.embedding ? Math.min(l.pp, m) : 1;
  if (st.embedding && l.interleave > 1) inFlight *= 1 + (l.pp - 1) / (l.pp * l.interleave);
  let activations = perLayer * st.layers * inFlight + act.workspace;
  if (st.head) activations += act.saved - perLayer * c.nLayers; // the final norm's input and output
  const total = weights + gradients + optimizer + activations;
  return { weights, gradients, optimizer, activations, perLayerActivations: perLayer, total, usable: (job.gpu.memoryGiB - RESERVE_GIB) * GIB, stage: name };
}

/** Memory of the most loaded GPU. */
export function memoryPerGpu(job: Job, l: Layout): Memory {
  return stages(job.config, l)
    .map((s) => stageMemory(job, l, s.name, s.shape))
    .reduce((a, b) => (b.total > a.total ? b : a));
}

/** Bytes one GPU sends in a ring all-reduce / all-gather / reduce-scatter of `bytes` over n ranks. */
export const ring = {
  allReduce: (bytes: number, n: number) => (2 * (n - 1) * bytes) / n,
  allGather: (bytes: number, n: number) => ((n - 1) * bytes) / n,
  reduceScatter: (bytes: number, n: number) => ((n - 1) * bytes) / n,
};

/** Bytes one GPU sends per optimizer step under the ring model, by group (see the header for what is exchanged). */
export interface CommBytes {
  /** Tensor-parallel activations, per micro-batch (4 all-reduce equivalents of s·b·h per layer, 6 with full recompute). */
  tpPerMicroBatch: number;
  /** Pipeline point-to-point, per micro-batch. */
  ppPerMicroBatch: number;
  /** Data-parallel: gradient all-reduce (ZeRO 0), or reduce-scatter + all-gather (ZeRO 1/2), per step; ZeRO 3 per step too. */
  dp: number;
  /** All of it for one step of m micro-batches. */
  step: number;
}

/**
 * The communication volume of a layout: what `simulate` divides by the link bandwidths. `elementBytes` are the
 * sizes of an exchanged activation and gradient element (bf16 on GPUs: 2 and 2; llama-ts on CPUs: 4 and 4), so a
 * real run's counted bytes can be checked against the model (bench train under mpirun does).
 */
export function commBytesPerStep(
  c: LlamaConfig, l: Layout, seqLen: number, microBatches: number, elementBytes: { activation: number; grad: number } = { activation: BYTES.activation, grad: BYTES.gradReduce },
): CommBytes {
  const act = seqLen * l.microBatch * c.dim * elementBytes.activation;
  const layersPerStage = c.nLayers / l.pp;
  const collectivesPerLayer = l.recompute === 'full' ? 6 : 4; // all-reduce equivalents: 2 fwd + 2 bwd (+2 re-fwd)
  const tpPerMicroBatch = l.tp > 1 ? layersPerStage * collectivesPerLayer * ring.allReduce(act, l.tp) : 0;
  const ppPerMicroBatch = l.pp > 1 ? (2 * l.interleave * act) / l.tp : 0;
  const gradBytes = stageParamsPerGpu(c, l, { layers: layersPerStage, embedding: l.pp === 1, head: true }) * elementBytes.grad;
  let dp = 0;
  if (l.dp > 1) {
    if (l.zero === 3) dp = microBatches * (2 * ring.allGather(gradBytes, l.dp) + ring.reduceScatter(gradBytes, l.dp));
    else if (l.zero === 0) dp = ring.allReduce(gradBytes, l.dp);
    else dp = ring.reduceScatter(gradBytes, l.dp) + ring.allGather(gradBytes, l.dp);
  }
  return { tpPerMicroBatch, ppPerMicroBatch, dp, step: microBatches * (tpPerMicroBatch + ppPerMicroBatch) + dp };
}

/** Training FLOPs per token of one transformer layer: 6·P_layer + 12·h·s. */
export function layerFlopsPerToken(c: LlamaConfig, s: number): number {
  return 6 * layerParamCount(c) + 12 * c.dim * s;
}

/** Forward FLOPs recomputed per token per layer under a policy. */
export function recomputeFlopsPerToken(c: LlamaConfig, s: number, r: Recompute): number {
  if (r === 'none') return 0;
  if (r === 'selective') return 4 * c.dim * s;
  return 2 * layerParamCount(c) + 4 * c.dim * s;
}

/** Model FLOPs per token: trainFlopsPerToken, i.e. the layers plus the output head (and the final norm's 6·h). */
export function modelFlopsPerToken(c: LlamaConfig, s: number): number {
  return trainFlopsPerToken(c, s);
}

/** Output head (and final norm) FLOPs per token; with the layers this sums to modelFlopsPerToken. */
function headFlopsPerToken(c: LlamaConfig): number {
  return 6 * (c.vocabSize * c.dim + c.dim);
}

export function simulate(job: Job, l: Layout): Simulation {
  checkLayout(job, l);
  const c = job.config;
  const g = job.gpu;
  const s = job.seqLen;
  const b = l.microBatch;
  const m = job.globalBatch / (l.dp * l.microBatch);
  const flopRate = g.peakTflops * 1e12 * g.matmulEfficiency;
  const tokensMb = s * b;
  const perNode = g.gpusPerNode;
  const tpBw = (l.tp <= perNode ? g.intraNodeGBps : g.interNodeGBps) * 1e9;
  const ppBw = (l.tp * l.pp <= perNode ? g.intraNodeGBps : g.interNodeGBps) * 1e9;
  const dpBw = (l.tp * l.pp * l.dp <= perNode ? g.intraNodeGBps : g.interNodeGBps) * 1e9;

  // Slowest stage per micro-batch: the one with the output head (the embedding lookup costs no matmul FLOPs).
  const layersPerStage = c.nLayers / l.pp;
  const stageFlops = (tokensMb * (layersPerStage * layerFlopsPerToken(c, s) + headFlopsPerToken(c))) / l.tp;
  const stageRecompute = (tokensMb * layersPerStage * recomputeFlopsPerToken(c, s, l.recompute)) / l.tp;
  const compute = stageFlops / flopRate;
  const recompute = stageRecompute / flopRate;

  const bytes = commBytesPerStep(c, l, s, m);
  const tpComm = bytes.tpPerMicroBatch / tpBw;
  const ppComm = bytes.ppPerMicroBatch / ppBw;
  const perMb = compute + recompute + tpComm + ppComm;
  const slots = m + (l.pp - 1) / l.interleave;
  const bubble = (slots - m) * perMb;

  // Data-parallel gradient reduction (bf16) and, with ZeRO ≥ 1, the all-gather of updated weights.
  const fwd = (compute + recompute) / 3; // forward ≈ 1/3 of a micro-batch's FLOPs
  const bwd = compute + recompute - fwd;
  const dpCommTotal = bytes.dp / dpBw;
  let dpCommExposed = 0;
  if (l.dp > 1) {
    if (l.zero === 3) dpCommExposed = m * Math.max(0, dpCommTotal / m - (compute + recompute));
    else if (l.zero === 0) dpCommExposed = Math.max(0, dpCommTotal - bwd);
    else dpCommExposed = Math.max(0, dpCommTotal / 2 - bwd) + Math.max(0, dpCommTotal / 2 - fwd); // RS and AG move the same bytes
  }
  const step = slots * perMb + dpCommExposed;
  const tokensPerStep = job.globalBatch * s;
  const tokensPerSecPerGpu = tokensPerStep / step / job.gpus;
  const mfpt = modelFlopsPerToken(c, s);
  const peak = g.peakTflops * 1e12;
  const mfu = (tokensPerSecPerGpu * mfpt) / peak;
  const hfu = (tokensPerSecPerGpu * (mfpt + c.nLayers * recomputeFlopsPerToken(c, s, l.recompute))) / peak;
  const memory = memoryPerGpu(job, l);
  const timing: Timing = {
    microBatches: m,
    compute,
    recompute,
    tpComm,
    ppComm,
    bubble,
    dpCommTotal,
    dpCommExposed,
    step,
    stepCompute: m * compute,
    stepRecompute: m * recompute,
    stepComm: m * (tpComm + ppComm) + dpCommExposed,
  };
  const days = job.trainTokens !== undefined ? job.trainTokens / (tokensPerSecPerGpu * job.gpus) / 86400 : null;
  return { layout: l, memory, fits: memory.total <= memory.usable, timing, tokensPerStep, tokensPerSecPerGpu, mfu, hfu, modelFlopsPerToken: mfpt, days };
}

export function describeLayout(l: Layout): string {
  const parts = [`tp${l.tp}${l.sp ? '+sp' : ''}`, `pp${l.pp}${l.interleave > 1 ? `x${l.interleave}` : ''}`, `dp${l.dp}`, `mb${l.microBatch}`, l.recompute, `zero${l.zero}`];
  return parts.join(' ');
}

export function gib(bytes: number): string {
  return `${(bytes / GIB).toFixed(1)} GiB`;
}

/** Simulate a layout and refuse it (one line) if it does not fit in memory. */
export function simulateOrRefuse(job: Job, l: Layout): Simulation {
  const r = simulate(job, l);
  if (!r.fits) {
    const mm = r.memory;
    throw new UserError(
      `layout ${describeLayout(l)} does not fit: needs ${gib(mm.total)} per GPU (weights ${gib(mm.weights)}, gradients ${gib(mm.gradients)}, ` +
        `optimizer ${gib(mm.optimizer)}, activations ${gib(mm.activations)}) but ${job.gpuName} has ${gib(mm.usable)} usable`,
    );
  }
  return r;
}

export interface SearchOptions {
  microBatches?: number[];
  recompute?: Recompute[];
  zero?: (0 | 1 | 2 | 3)[];
  maxTp?: number;
}

/**
 * Enumerate layouts for the job's GPU count (tp up to a node, dividing heads; pp dividing the layers; sequence
 * parallelism whenever tp > 1), keep those that divide and fit, best tokens/s/GPU first.
 */
export function searchLayouts(job: Job, opts: SearchOptions = {}): Simulation[] {
  const c = job.config;
  const maxTp = opts.maxTp ?? job.gpu.gpusPerNode;
  const out: Simulation[] = [];
  for (const tp of divisors(job.gpus).filter((t) => t <= maxTp)) {
    for (const pp of divisors(c.nLayers)) {
      if (job.gpus % (tp * pp) !== 0) continue;
      const dp = job.gpus / (tp * pp);
      for (const microBatch of opts.microBatches ?? [1, 2, 4, 8]) {
        for (const recompute of opts.recompute ?? RECOMPUTE) {
          for (const zero of opts.zero ?? [0, 1]) {
            if (zero > 0 && dp === 1) continue;
            const layout: Layout = { tp, pp, dp, sp: tp > 1, microBatch, recompute, zero, interleave: 1 };
            try {
              const r = simulate(job, layout);
              if (r.fits) out.push(r);
            } catch (e) {
              if (!(e instanceof UserError)) throw e;
            }
          }
        }
      }
    }
  }
  out.sort((a, b) => b.tokensPerSecPerGpu - a.tokensPerSecPerGpu || a.memory.total - b.memory.total);
  return out;
}
