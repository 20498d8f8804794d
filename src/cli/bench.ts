/** `llama-ts bench train|generate`: training or generation throughput as one JSON line. */
import type { Command } from './main.js';
import { parse, int, num, str } from './args.js';
import { loadConfigArg, configOptions, forceOption, memoryRefusal, ranksOnThisHost } from './common.js';
import { trainingMemory } from '../model/memory.js';
import { anyRank } from '../training/distributed.js';
import { benchTrain } from '../bench/train.js';
import { benchGenerate } from './bench-generate.js';
import { createBackend, BACKEND_NAMES, type BackendName } from '../kernels/index.js';
import { UserError } from '../util/errors.js';
import { checkThreadCount } from '../util/hardware.js';
import { createComm } from '../parallel/mpi.js';
import { dtypeArg, recomputeArg } from './train.js';
import { benchTrainDistributed } from '../bench/train-dist.js';
import { cpus } from 'node:os';

/** The CPU and the pool a benchmark ran on (bench JSON names them). */
function cpuInfo(backend: object): { cpu: string; threads: number | null; simd: string | null } {
  const nb = backend as { threads?: () => number; simd?: () => string };
  return { cpu: cpus()[0]?.model ?? 'unknown', threads: nb.threads ? nb.threads() : null, simd: nb.simd ? nb.simd() : null };
}

const USAGE = `usage: llama-ts bench train (--preset NAME | --config FILE) [--batch B] [--seq T] [--backend ${BACKEND_NAMES.join('|')}]
                       [--steps N] [--threads N] [--peak GFLOPS] [--vocab V ...]
                       [--recompute none|selective|full] [--dtype f32|bf16]
       mpirun -np N llama-ts bench train ... [--tp T] [--sp] [--zero 1] [--accum K]
       --force: start even when the memory estimate exceeds the available memory (LLAMA_TS_MEMORY_LIMIT, else MemAvailable)
Times N training steps (after one warm-up step) on random tokens and prints one JSON line with tokens_per_s, mfu,
step_ms, the CPU time per step (step_cpu_ms, tokens_per_cpu_s), the time of each phase and memory by category (weights, gradients, optimizer, activations saved,
workspace), predicted by plan cluster's formulas and measured (buffers, peak RSS, heap, external). The MFU peak is the native SGEMM measured now unless --peak is given.
Under mpirun it runs the training loop over the ranks and rank 0 prints the aggregate tokens/s, the exposed
communication time, the bytes sent per step by group beside plan cluster's prediction, and per-rank memory.`;

export const command: Command = {
  async run(argv) {
    if (argv[0] === 'generate') return benchGenerate(argv.slice(1));
    const { values, positionals } = parse(argv, {
      ...configOptions, batch: { type: 'string' }, backend: { type: 'string' }, steps: { type: 'string' },
      threads: { type: 'string' }, peak: { type: 'string' }, tp: { type: 'string' }, sp: { type: 'boolean' }, zero: { type: 'string' }, accum: { type: 'string' }, recompute: { type: 'string' }, dtype: { type: 'string' }, ...forceOption,
    }, true);
    if (values.help) {
      console.log(USAGE);
      return 0;
    }
    const [what, ...extra] = positionals;
    if (what !== 'train') throw new UserError(what ? `unknown benchmark '${what}' (known: train, generate)` : `missing benchmark name: ${USAGE.split('\n')[0]}`);
    if (extra.length) throw new UserError(`unexpected argument '${extra[0]}'`);
    const config = loadConfigArg(values);
    const seq = int(values.seq, 'seq', Math.min(256, config.maxSeqLen), 1);
    const batch = int(values.batch, 'batch', 8, 1);
    const steps = int(values.steps, 'steps', 3, 1);
    const backendName = str(values.backend);
    if (backendName !== undefined && !(BACKEND_NAMES as readonly string[]).includes(backendName)) {
      throw new UserError(`unknown backend '${backendName}' (known: ${BACKEND_NAMES.join(', ')})`);
    }
    const backend = createBackend(backendName as BackendName | undefined);
    const threads = values.threads === undefined ? undefined : checkThreadCount(int(values.threads, 'threads', 1, 1), '--threads');
    if (threads !== undefined) {
      const nb = backend as { setThreads?: (n: number) => number };
      if (!nb.setThreads) throw new UserError(`--threads needs the native backend (got ${backend.name})`);
      nb.setThreads(threads);
    }
    const peak = num(values.peak, 'peak');
    if (peak !== undefined && !(peak > 0)) throw new UserError(`--peak expects a positive number of GFLOP/s, got '${String(values.peak)}'`);
    const preset = str(values.preset) ?? null;
    const recompute = recomputeArg(values.recompute);
    const world = createComm();
    const tp = int(values.tp, 'tp', 1, 1);
    const zero = int(values.zero, 'zero', 0, 0);
    const dp = world.world % tp === 0 ? world.world / tp : 1;
    const need = trainingMemory(config, { batch, seq, tp: world.world > 1 ? tp : 1, sp: world.world > 1 && Boolean(values.sp), dp, zero: world.world > 1 && zero === 1 ? 1 : 0, recompute, dtype: dtypeArg(values.dtype), bytesPerFloat: backend.alloc(0).BYTES_PER_ELEMENT });
    const refusal = memoryRefusal(`benchmarking this model (batch ${batch} × seq ${seq})`, need, `use a smaller --batch or --seq, --tp T over more ranks under mpirun, or see 'llama-ts plan cluster'`, values, ranksOnThisHost(world.world));
    if (anyRank(world, refusal !== null)) throw new UserError(refusal ?? 'another rank of this run has not enough memory for it');
    if (world.world > 1) {
      if (values.dtype !== undefined && dtypeArg(values.dtype) !== 'f32') throw new UserError('--dtype bf16 is measured in one process only (not under mpirun)');
      if (zero > 1) throw new UserError(`--zero must be 0 or 1, got ${zero}`);
      const r = await benchTrainDistributed({ config, batch, seq, backend, steps, world, tp, sp: Boolean(values.sp), zero: zero as 0 | 1, accum: int(values.accum, 'accum', 1, 1), recompute });
      if (r) console.log(JSON.stringify({ bench: 'train-distributed', preset, vocab: config.vocabSize, backend: backend.name, ...cpuInfo(backend), ...r }));
      return 0;
    }
    const dtype = dtypeArg(values.dtype);
    const r = benchTrain({ config, batch, seq, backend, steps, peakGflops: peak, recompute, dtype });
    console.log(JSON.stringify({ bench: 'train', preset, vocab: config.vocabSize, ...r }));
    return 0;
  },
};
