/**
 * `llama-ts plan size` and `llama-ts plan cluster`: thin wrappers over src/plan (see docs/PLANNER.md).
 */
import { writeFileAtomic } from '../util/fsutil.js';
import type { Command } from './main.js';
import { parse, num, int, str, type Values } from './args.js';
import { configOptions, loadConfigArg, readJsonFile } from './common.js';
import { formatTable, human, pct, sci } from './table.js';
import { paramCount, getPreset, describeConfig } from '../model/config.js';
import { UserError } from '../util/errors.js';
import {
  CHINCHILLA,
  LLAMA_RUNS,
  comparePoint,
  computeOptimal,
  computeOptimalNumeric,
  computeOptimalWithInference,
  inferenceOptimal,
  validateFit,
  type ChinchillaFit,
} from '../plan/scaling.js';
import { GPUS, getGpu, mergeGpuTable, type GpuSpec } from '../plan/gpus.js';
import {
  RECOMPUTE,
  describeLayout,
  gib,
  searchLayouts,
  simulateOrRefuse,
  type Job,
  type Layout,
  type Recompute,
  type Simulation,
} from '../plan/cluster.js';
import { getRecipe } from '../model/recipe.js';
import { sizeChartSvg } from '../plan/svg.js';

const SIZE_USAGE = `usage: llama-ts plan size (--flops C | --gpu-hours H [--gpu NAME] [--mfu U]) [options]

  --flops C              training compute budget in FLOPs (e.g. 5.76e23)
  --gpu-hours H          ... or GPU-hours, converted as H × 3600 × peak bf16 × --mfu
  --gpu NAME             GPU type for --gpu-hours (default A100-80GB; see 'plan cluster --help')
  --gpu-table FILE       JSON file extending/overriding the GPU table
  --mfu U                assumed model-FLOPs utilisation for --gpu-hours (default 0.4)
  --inference-tokens T   tokens the model will serve over its life (default 0)
  --E --A --B --alpha --beta   override the Chinchilla approach-3 constants
  --svg FILE             write a chart of predicted loss vs training compute
  --json                 print JSON instead of tables
Quantities accept suffixes k, M, B/G, T (powers of 1000) and Ki, Mi, Gi, Ti (powers of 1024).`;

const CLUSTER_USAGE = `usage: llama-ts plan cluster (--preset NAME | --config FILE) --gpus N [layout] [options]

  --seq T                sequence length (default: the model's maxSeqLen)
  --batch-tokens X       global batch in tokens (default: the preset's recipe, else 4Mi = 4194304, LLaMA's), or
  --global-batch S       global batch in sequences
  --gpu NAME             GPU type (default A100-80GB; built in: ${Object.keys(GPUS).join(', ')})
  --gpu-table FILE       JSON {name: {peakTflops, memoryGiB, intraNodeGBps, interNodeGBps, gpusPerNode, matmulEfficiency}}
  --efficiency E         override the GPU's matmul efficiency (fraction of peak)
  --gpus N               number of GPUs
  --tp T  --sp           tensor-parallel degree (default 1), sequence parallelism
  --pp P  --interleave V pipeline degree (default 1), virtual stages per GPU (default 1)
  --dp D                 data-parallel degree (default GPUs / (tp × pp))
  --micro-batch B        sequences per micro-batch (default 1)
  --recompute R          none | selective | full (default selective)
  --zero Z               optimizer-state sharding: 0 none, 1 optimizer, 2 + gradients, 3 + weights (default 1)
  --train-tokens X       token budget for the days estimate (default: the preset's recipe, else 1T)
  --search [--top K]     search tp/pp/micro-batch/recompute/zero layouts and print the best K (default 5)
  --json                 print JSON instead of tables`;

const QUANT = /^([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(k|K|M|B|G|T|Ki|Mi|Gi|Ti)?$/;
const SUFFIX: Record<string, number> = { k: 1e3, K: 1e3, M: 1e6, B: 1e9, G: 1e9, T: 1e12, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };

/** A positive (or, with allowZero, non-negative) quantity such as 5.76e23, 1.4T or 4Mi. */
export function quantity(v: string | boolean | (string | boolean)[] | undefined, name: string, allowZero = false): number | undefined {
  const bound = allowZero ? '>= 0' : 'positive';
  if (v === undefined) return undefined;
  const text = typeof v === 'string' ? v.trim() : '';
  const m = QUANT.exec(text);
  if (!m) {
    const n = Number(text);
    if (text !== '' && Number.isFinite(n)) throw new UserError(`--${name} must be ${bound}, got ${text}`);
    throw new UserError(`--${name} expects a ${allowZero ? 'non-negative' : 'positive'} number (suffixes k, M, B, T, Ki, Mi...), got '${String(v)}'`);
  }
  const x = Number(m[1]) * (m[2] ? SUFFIX[m[2]]! : 1);
  if (!Number.isFinite(x)) throw new UserError(`--${name} is too large, got ${text}`);
  if (!(x > 0 || (allowZero && x === 0))) throw new UserError(`--${name} must be ${bound}, got ${text}`);
  return x;
}

/** `--flops -1` is ambiguous to parseArgs; rewrite a negative-number value into `--flops=-1` so we can reject it clearly. */
function joinNegativeValues(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = argv[i + 1];
    if (a.startsWith('--') && !a.includes('=') && next !== undefined && /^-(\d|\.\d|inf)/i.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

function loadGpuTable(values: Values): Record<string, GpuSpec> {
  const path = str(values['gpu-table']);
  return path ? mergeGpuTable(readJsonFile(path, 'GPU table'), path) : GPUS;
}

function fitFrom(values: Values): ChinchillaFit {
  const fit: ChinchillaFit = {
    E: num(values.E, 'E', CHINCHILLA.E),
    A: num(values.A, 'A', CHINCHILLA.A),
    B: num(values.B, 'B', CHINCHILLA.B),
    alpha: num(values.alpha, 'alpha', CHINCHILLA.alpha),
    beta: num(values.beta, 'beta', CHINCHILLA.beta),
  };
  validateFit(fit);
  return fit;
}

async function runSize(argv: string[]): Promise<number> {
  const { values } = parse(joinNegativeValues(argv), {
    flops: { type: 'string' },
    'gpu-hours': { type: 'string' },
    gpu: { type: 'string' },
    'gpu-table': { type: 'string' },
    mfu: { type: 'string' },
    'inference-tokens': { type: 'string' },
    E: { type: 'string' },
    A: { type: 'string' },
    B: { type: 'string' },
    alpha: { type: 'string' },
    beta: { type: 'string' },
    svg: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (values.help) {
    console.log(SIZE_USAGE);
    return 0;
  }
  const fit = fitFrom(values);
  let budget = quantity(values.flops, 'flops');
  const hours = quantity(values['gpu-hours'], 'gpu-hours');
  let budgetNote = '';
  if (budget !== undefined && hours !== undefined) throw new UserError('give either --flops or --gpu-hours, not both');
  if (hours !== undefined) {
    const gpuName = str(values.gpu) ?? 'A100-80GB';
    const gpu = getGpu(gpuName, loadGpuTable(values));
    const mfu = num(values.mfu, 'mfu', 0.4);
    if (!(mfu > 0 && mfu <= 1)) throw new UserError(`--mfu must be in (0, 1], got ${mfu}`);
    budget = hours * 3600 * gpu.peakTflops * 1e12 * mfu;
    budgetNote = `${sci(hours)} ${gpuName} GPU-hours at ${pct(mfu, 0)} MFU`;
  } else if (values.gpu !== undefined || values.mfu !== undefined) {
    throw new UserError('--gpu and --mfu only apply with --gpu-hours');
  }
  if (budget === undefined) throw new UserError('no budget given: use --flops C or --gpu-hours H (see --help)');
  const inferenceTokens = quantity(values['inference-tokens'], 'inference-tokens', true) ?? 0;

  const optimal = computeOptimal(budget, fit);
  const numeric = computeOptimalNumeric(budget, fit);
  const chinTotal = computeOptimalWithInference(optimal.loss, inferenceTokens, fit);
  const aware = inferenceOptimal(optimal.loss, inferenceTokens, fit);
  const llama = LLAMA_RUNS.map((r) => comparePoint(r.preset, paramCount(getPreset(r.preset)), r.tokens, fit));
  const svgPath = str(values.svg);
  if (svgPath) {
    try {
      writeFileAtomic(svgPath, [sizeChartSvg(llama, fit, budget)]);
    } catch (e) {
      throw new UserError(`cannot write SVG '${svgPath}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  if (values.json) {
    console.log(JSON.stringify({ fit, budgetFlops: budget, computeOptimal: optimal, numericCheck: numeric, inferenceTokens, computeOptimalWithInference: chinTotal, inferenceOptimal: aware, llama, svg: svgPath ?? null }));
    return 0;
  }
  const rel = Math.abs(numeric.params - optimal.params) / optimal.params;
  console.log(`fit     L(N, D) = ${fit.E} + ${fit.A}/N^${fit.alpha} + ${fit.B}/D^${fit.beta}   (Hoffmann et al. 2022, approach 3; C = 6·N·D)`);
  console.log(`budget  ${sci(budget)} FLOPs${budgetNote ? ` (${budgetNote})` : ''}`);
  console.log('');
  console.log('(a) compute-optimal allocation');
  console.log(
    formatTable(
      ['', 'params', 'tokens', 'tokens/param', 'train FLOPs', 'pred. loss'],
      [
        ['closed form', human(optimal.params), human(optimal.tokens), (optimal.tokens / optimal.params).toFixed(1), sci(optimal.flops), optimal.loss.toFixed(4)],
        ['numeric min.', human(numeric.params), human(numeric.tokens), (numeric.tokens / numeric.params).toFixed(1), sci(numeric.flops), numeric.loss.toFixed(4)],
      ],
      '    ',
    ),
  );
  console.log(`    closed form and golden-section minimisation agree to ${sci(rel, 2)} (relative, in N)`);
  console.log('');
  console.log(`(b) minimum total cost for the same loss ${optimal.loss.toFixed(4)}, serving ${sci(inferenceTokens)} tokens (2·N FLOPs each)`);
  console.log(
    formatTable(
      ['', 'params', 'tokens', 'train FLOPs', 'inference FLOPs', 'total FLOPs'],
      [
        ['compute-optimal', human(chinTotal.params), human(chinTotal.tokens), sci(chinTotal.flops), sci(chinTotal.inferenceFlops), sci(chinTotal.totalFlops)],
        ['inference-aware', human(aware.params), human(aware.tokens), sci(aware.flops), sci(aware.inferenceFlops), sci(aware.totalFlops)],
      ],
      '    ',
    ),
  );
  if (inferenceTokens === 0) console.log('    (no --inference-tokens given: the two coincide)');
  else console.log(`    total cost saved: ${pct(1 - aware.totalFlops / chinTotal.totalFlops)}, with a ${pct(1 - aware.params / chinTotal.params)} smaller model`);
  console.log('');
  console.log("(c) LLaMA's runs against the compute-optimal model of equal predicted loss");
  console.log(
    formatTable(
      ['model', 'params', 'tokens', 'pred. loss', 'train FLOPs', 'opt. params', 'opt. tokens', 'opt. FLOPs', 'infer. saving', 'break-even'],
      llama.map((p) => [
        p.name,
        human(p.params),
        human(p.tokens),
        p.loss.toFixed(4),
        sci(p.flops),
        human(p.equalLossOptimal.params),
        human(p.equalLossOptimal.tokens),
        sci(p.equalLossOptimal.flops),
        pct(p.inferenceSaving),
        p.breakEvenTokens === null ? 'never' : `${sci(p.breakEvenTokens)} tok`,
      ]),
      '    ',
    ),
  );
  console.log('    infer. saving: serving FLOPs saved per token (1 − N/N*); negative = larger than the equal-loss optimum.');
  console.log('    break-even: served tokens after which the extra training compute has paid for itself.');
  if (svgPath) console.log(`chart written to ${svgPath}`);
  return 0;
}

function recomputeArg(v: Values[string]): Recompute {
  const r = str(v) ?? 'selective';
  if (!(RECOMPUTE as string[]).includes(r)) throw new UserError(`--recompute must be one of ${RECOMPUTE.join(', ')}, got '${r}'`);
  return r as Recompute;
}

function simulationJson(r: Simulation) {
  return { layout: r.layout, description: describeLayout(r.layout), memoryBytes: r.memory, fits: r.fits, timingSeconds: r.timing, tokensPerStep: r.tokensPerStep, tokensPerSecPerGpu: r.tokensPerSecPerGpu, mfu: r.mfu, hfu: r.hfu, modelFlopsPerToken: r.modelFlopsPerToken, days: r.days };
}

function printSimulation(job: Job, r: Simulation): void {
  const m = r.memory;
  const t = r.timing;
  const ms = (s: number) => `${(s * 1e3).toFixed(1)} ms`;
  console.log(`layout   ${describeLayout(r.layout)}   (${t.microBatches} micro-batches per step)`);
  console.log('');
  console.log(`memory per GPU (${m.stage === 'only' ? 'single stage' : `${m.stage} pipeline stage, the fuller one`})`);
  console.log(
    formatTable(
      ['', 'size'],
      [
        ['weights (bf16)', gib(m.weights)],
        ['gradients (fp32)', gib(m.gradients)],
        ['optimizer (fp32 master + Adam)', gib(m.optimizer)],
        [`activations (${(m.perLayerActivations / 2 ** 20).toFixed(1)} MiB/layer/micro-batch)`, gib(m.activations)],
        ['total', gib(m.total)],
        [`usable on ${job.gpuName}`, gib(m.usable)],
      ],
      '    ',
    ),
  );
  console.log('');
  console.log('time');
  console.log(
    formatTable(
      ['', 'per micro-batch', 'per step'],
      [
        ['compute', ms(t.compute), `${t.stepCompute.toFixed(2)} s`],
        ['recompute', ms(t.recompute), `${t.stepRecompute.toFixed(2)} s`],
        ['tensor-parallel comm (exposed)', ms(t.tpComm), ''],
        ['pipeline p2p (exposed)', ms(t.ppComm), ''],
        ['pipeline bubble', '', `${t.bubble.toFixed(2)} s`],
        [`data-parallel comm (${t.dpCommTotal.toFixed(2)} s, overlapped)`, '', `${t.dpCommExposed.toFixed(2)} s exposed`],
        ['exposed comm, total', '', `${t.stepComm.toFixed(2)} s`],
        ['step', '', `${t.step.toFixed(2)} s`],
      ],
      '    ',
    ),
  );
  console.log('');
  console.log(`throughput  ${r.tokensPerSecPerGpu.toFixed(1)} tokens/s/GPU, ${sci(r.tokensPerSecPerGpu * job.gpus)} tokens/s in all`);
  console.log(`utilisation MFU ${pct(r.mfu)}, HFU ${pct(r.hfu)} (matmul efficiency ${job.gpu.matmulEfficiency} of ${job.gpu.peakTflops} TFLOP/s)`);
  console.log(`days        ${r.days!.toFixed(1)} for ${sci(job.trainTokens!)} tokens`);
}

async function runCluster(argv: string[]): Promise<number> {
  const { values } = parse(joinNegativeValues(argv), {
    ...configOptions,
    'batch-tokens': { type: 'string' },
    'global-batch': { type: 'string' },
    gpu: { type: 'string' },
    'gpu-table': { type: 'string' },
    efficiency: { type: 'string' },
    gpus: { type: 'string' },
    tp: { type: 'string' },
    sp: { type: 'boolean' },
    pp: { type: 'string' },
    interleave: { type: 'string' },
    dp: { type: 'string' },
    'micro-batch': { type: 'string' },
    recompute: { type: 'string' },
    zero: { type: 'string' },
    'train-tokens': { type: 'string' },
    search: { type: 'boolean' },
    top: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (values.help) {
    console.log(CLUSTER_USAGE);
    return 0;
  }
  const config = loadConfigArg(values);
  const recipe = getRecipe(str(values.preset) ?? ''); // the preset's batch and token budget (model/recipe.ts)
  const seqLen = int(values.seq, 'seq', config.maxSeqLen, 1);
  const gpuName = str(values.gpu) ?? 'A100-80GB';
  const gpu = getGpu(gpuName, loadGpuTable(values));
  if (values.efficiency !== undefined) {
    const e = num(values.efficiency, 'efficiency');
    if (!(e! > 0 && e! <= 1)) throw new UserError(`--efficiency must be in (0, 1], got ${e}`);
    gpu.matmulEfficiency = e!;
  }
  if (values.gpus === undefined) throw new UserError('--gpus N is required');
  const gpus = int(values.gpus, 'gpus', undefined, 1)!;
  if (values['batch-tokens'] !== undefined && values['global-batch'] !== undefined) throw new UserError('give either --batch-tokens or --global-batch, not both');
  let globalBatch: number;
  if (values['global-batch'] !== undefined) globalBatch = int(values['global-batch'], 'global-batch', undefined, 1)!;
  else {
    const tokens = values['batch-tokens'] === undefined ? recipe?.batchTokens ?? 2 ** 22 : quantity(values['batch-tokens'], 'batch-tokens')!;
    if (!Number.isInteger(tokens / seqLen)) throw new UserError(`a batch of ${tokens} tokens is not a whole number of ${seqLen}-token sequences`);
    globalBatch = tokens / seqLen;
  }
  const trainTokens = values['train-tokens'] === undefined ? recipe?.tokens ?? 1e12 : quantity(values['train-tokens'], 'train-tokens')!;
  const job: Job = { config, seqLen, globalBatch, gpus, gpuName, gpu, trainTokens };

  if (values.search) {
    const top = int(values.top, 'top', 5, 1);
    const found = searchLayouts(job);
    if (found.length === 0) throw new UserError(`no layout of ${gpus} ${gpuName} GPUs divides this model and batch and fits in memory`);
    const best = found.slice(0, top);
    if (values.json) {
      console.log(JSON.stringify({ model: config, seqLen, globalBatch, gpus, gpu: gpuName, considered: found.length, best: best.map(simulationJson) }));
      return 0;
    }
    console.log(`model    ${describeConfig(config)}; ${human(paramCount(config))} params`);
    console.log(`job      ${gpus} × ${gpuName}, seq ${seqLen}, global batch ${globalBatch} sequences (${human(globalBatch * seqLen)} tokens)`);
    console.log(`${found.length} layouts fit; best ${best.length}:`);
    console.log(
      formatTable(
        ['layout', 'mem/GPU', 'step', 'tokens/s/GPU', 'MFU', 'HFU', 'days'],
        best.map((r) => [describeLayout(r.layout), gib(r.memory.total), `${r.timing.step.toFixed(2)} s`, r.tokensPerSecPerGpu.toFixed(1), pct(r.mfu), pct(r.hfu), `${r.days!.toFixed(1)}`]),
      ),
    );
    console.log(`days: for ${sci(trainTokens)} tokens`);
    return 0;
  }

  const tp = int(values.tp, 'tp', 1, 1);
  const pp = int(values.pp, 'pp', 1, 1);
  const zero = int(values.zero, 'zero', 1, 0);
  if (zero > 3) throw new UserError(`--zero must be 0, 1, 2 or 3, got ${zero}`);
  const layout: Layout = {
    tp,
    pp,
    // When tp×pp does not divide the GPUs, checkLayout says so (after checking the model divides).
    dp: int(values.dp, 'dp', Math.max(1, Math.floor(gpus / (tp * pp))), 1),
    sp: values.sp === true,
    microBatch: int(values['micro-batch'], 'micro-batch', 1, 1),
    recompute: recomputeArg(values.recompute),
    zero: zero as Layout['zero'],
    interleave: int(values.interleave, 'interleave', 1, 1),
  };
  const r = simulateOrRefuse(job, layout);
  if (values.json) {
    console.log(JSON.stringify({ model: config, params: paramCount(config), seqLen, globalBatch, gpus, gpu: gpuName, gpuSpec: gpu, trainTokens, ...simulationJson(r) }));
    return 0;
  }
  console.log(`model    ${describeConfig(config)}; ${human(paramCount(config))} params`);
  console.log(`job      ${gpus} × ${gpuName}, seq ${seqLen}, global batch ${globalBatch} sequences (${human(globalBatch * seqLen)} tokens)`);
  printSimulation(job, r);
  return 0;
}

export const command: Command = {
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub === 'size') return runSize(rest);
    if (sub === 'cluster') return runCluster(rest);
    if (sub === undefined || sub === '--help' || sub === '-h') {
      console.log(`usage: llama-ts plan size|cluster [options]   (llama-ts plan size --help, llama-ts plan cluster --help)`);
      return sub === undefined ? 1 : 0;
    }
    throw new UserError(`unknown plan subcommand '${sub}' (size, cluster)`);
  },
};
