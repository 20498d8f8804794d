import type { Command } from './main.js';
import { parse, int } from './args.js';
import { loadConfigArg, configOptions } from './common.js';
import { openCheckpoint } from '../io/checkpoint.js';
import { str, type Values } from './args.js';
import { UserError } from '../util/errors.js';
import { paramCount, trainFlopsPerToken, ffnHiddenDim, headDim, type LlamaConfig } from '../model/config.js';
import { activationFloats } from '../model/llama.js';
import { describeRecipe, getRecipe } from '../model/recipe.js';
import { trainingMemoryCategories } from '../plan/activations.js';
import { benchTrain, type MemoryReport } from '../bench/train.js';
import { createBackend } from '../kernels/index.js';
import { dtypeArg, recomputeArg } from './train.js';

export function memoryEstimate(c: LlamaConfig, batch: number, seq: number, bytesPerFloat = 4) {
  const n = paramCount(c);
  // what Llama allocates for the backward at this shape (saved activations, backward scratch, loss chunk)
  const activations = activationFloats(c, batch, seq) * bytesPerFloat;
  return {
    weights: n * bytesPerFloat,
    gradients: n * bytesPerFloat,
    adamMoments: 2 * n * bytesPerFloat,
    activations,
    total: 4 * n * bytesPerFloat + activations,
  };
}

function gib(b: number): string {
  return b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(2)} GiB` : `${(b / 2 ** 20).toFixed(1)} MiB`;
}

export const command: Command = {
  async run(argv) {
    const { values } = parse(argv, {
      ...configOptions, checkpoint: { type: 'string' }, batch: { type: 'string' }, json: { type: 'boolean' },
      memory: { type: 'boolean' }, recompute: { type: 'string' }, dtype: { type: 'string' }, measure: { type: 'boolean' },
    });
    if (values.help) {
      console.log('usage: llama-ts info (--preset NAME | --config FILE | --checkpoint DIR) [--seq T] [--batch B] [--json]');
      console.log('       llama-ts info ... --memory [--recompute none|selective|full] [--dtype f32|bf16] [--measure]');
      console.log('--memory: training memory of one process by category (weights, gradients, optimizer, activations saved,');
      console.log("workspace), predicted by plan cluster's formulas; --measure also runs one training step on random tokens");
      console.log('(default backend) and prints what it allocated, its peak RSS, heap and external memory.');
      console.log("A preset's line 'recipe' is its training recipe: what 'llama-ts train --preset NAME' uses unless a flag says otherwise.");
      return 0;
    }
    const ckpt = str(values.checkpoint);
    const config = ckpt ? openCheckpoint(ckpt).state.config : loadConfigArg(values);
    const seq = int(values.seq, 'seq', config.maxSeqLen, 1);
    const batch = int(values.batch, 'batch', 1, 1);
    const mem = memoryEstimate(config, batch, seq);
    if (values.memory) return printMemory(config, batch, seq, values);
    for (const f of ['recompute', 'dtype', 'measure'] as const) if (values[f] !== undefined) throw new UserError(`--${f} goes with --memory`);
    const recipe = ckpt ? undefined : getRecipe(str(values.preset) ?? '');
    const info = {
      config,
      ffnHiddenDim: ffnHiddenDim(config),
      headDim: headDim(config),
      params: paramCount(config),
      trainFlopsPerToken: trainFlopsPerToken(config, seq),
      seq,
      batch,
      memoryBytesFp32: mem,
      ...(recipe ? { recipe } : {}),
    };
    if (values.json) {
      console.log(JSON.stringify(info));
      return 0;
    }
    console.log(`config      ${JSON.stringify(config)}`);
    console.log(`ffn hidden  ${info.ffnHiddenDim}   head dim ${info.headDim}`);
    console.log(`parameters  ${info.params.toLocaleString('en-US')}`);
    if (recipe) console.log(`recipe      ${describeRecipe(recipe)}  (${recipe.source})`);
    console.log(`train FLOPs/token (seq ${seq})  ${info.trainFlopsPerToken.toExponential(3)}`);
    console.log(
      `memory (fp32, batch ${batch}, seq ${seq}): weights ${gib(mem.weights)}, grads ${gib(mem.gradients)}, ` +
        `Adam ${gib(mem.adamMoments)}, activations ${gib(mem.activations)}, total ${gib(mem.total)}`,
    );
    return 0;
  },
};

/** `info --memory`: the categories predicted, and with --measure measured by one training step. */
function printMemory(config: LlamaConfig, batch: number, seq: number, values: Values): number {
  const recompute = recomputeArg(values.recompute);
  const dtype = dtypeArg(values.dtype);
  const predicted = trainingMemoryCategories(config, { params: paramCount(config), batch, seq, recompute, dtype });
  let measured: MemoryReport['measured'] | null = null;
  if (values.measure) {
    const r = benchTrain({ config: { ...config }, batch, seq, backend: createBackend(), steps: 1, peakGflops: 1, recompute, dtype });
    measured = r.memory.measured;
  }
  const out = { batch, seq, recompute, dtype, predicted, ...(measured ? { measured } : {}) };
  if (values.json) {
    console.log(JSON.stringify(out));
    return 0;
  }
  console.log(`training memory, one process (batch ${batch}, seq ${seq}, --recompute ${recompute}, --dtype ${dtype})`);
  const keys = ['weights', 'gradients', 'optimizer', 'activations_saved', 'workspace', 'total'] as const;
  console.log(`${'category'.padEnd(18)} ${'predicted'.padStart(12)}${measured ? ' ' + 'measured'.padStart(12) : ''}`);
  for (const k of keys) console.log(`${k.replace('_', ' ').padEnd(18)} ${gib(predicted[k]).padStart(12)}${measured ? ' ' + gib(measured[k]).padStart(12) : ''}`);
  if (measured) {
    console.log(`process: peak RSS ${gib(measured.peak_rss)}, heap ${gib(measured.heap_used)}, external ${gib(measured.external)} (ArrayBuffers ${gib(measured.array_buffers)})`);
  }
  return 0;
}
