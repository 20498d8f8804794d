/**
 * A quick check, before anything is allocated, that a training run can fit: the memory it certainly needs
 * (weights, gradients, AdamW moments, the activations it keeps: model/memory.ts) against this machine's total,
 * and every large buffer against the longest typed array V8 can make. A run that cannot fit stops here with one
 * line instead of a RangeError or an out-of-memory abort minutes later. (A full estimate is the planner's job;
 * this bound only refuses what certainly does not fit.)
 */
import { totalmem } from 'node:os';
import { ffnHiddenDim, paramCount, type LlamaConfig } from '../model/config.js';
import { trainingMemory } from '../model/memory.js';
import { UserError } from '../util/errors.js';

/** The most elements one typed array may hold (V8 on 64-bit hosts). */
export const MAX_ARRAY_ELEMENTS = 2 ** 32;

/** Memory this process may use: the machine's, or the cgroup's limit when lower. */
export function memoryLimit(): number {
  const constrained = (process as { constrainedMemory?: () => number | undefined }).constrainedMemory?.();
  const total = totalmem();
  return constrained && constrained > 0 && constrained < total ? constrained : total;
}

const gb = (bytes: number) => { const g = bytes / 2 ** 30; return `${g >= 1000 ? Math.round(g).toLocaleString("en-US") : g.toPrecision(3)} GiB`; };

export interface RunShape {
  batch: number;
  seq: number;
  /** Tensor-parallel ranks sharing one model (each holds 1/tp of the weights). Default 1. */
  tp?: number;
  /** Bytes per float of the backend (4; 8 for ref-f64). Default 4. */
  floatBytes?: number;
}

/** Throws a one-line UserError when the run certainly cannot fit in memory or in V8's typed arrays. */
export function checkTrainingFits(config: LlamaConfig, shape: RunShape, memory = memoryLimit()): void {
  const tp = shape.tp ?? 1;
  const { batch, seq } = shape;
  const params = paramCount(config) / tp;
  const hidden = ffnHiddenDim(config);
  const rows = batch * seq;
  // what the model will certainly allocate: weights, gradients, the two AdamW moments and the activations, as
  // model/memory.ts lays them out (its allowances for the runtime and checkpoint gathers are left out)
  const need = trainingMemory(config, { batch, seq, tp, bytesPerFloat: shape.floatBytes ?? 4 }).parts
    .filter((p) => p.name === 'weights' || p.name === 'gradients' || p.name === 'AdamW' || p.name === 'activations')
    .reduce((a, p) => a + p.bytes, 0);
  const what = `--batch ${batch} × --seq ${seq} on a model of ${Math.round(paramCount(config)).toLocaleString('en-US')} parameters`;
  if (need > memory) {
    throw new UserError(`${what} needs at least ${gb(need)} of memory (weights, gradients, AdamW moments, activations); this machine has ${gb(memory)}`);
  }
  const largest = Math.max(params, rows * Math.max(config.dim, hidden) / tp, rows);
  if (largest > MAX_ARRAY_ELEMENTS) {
    throw new UserError(`${what} needs a buffer of ${largest.toExponential(3)} elements, more than the ${MAX_ARRAY_ELEMENTS} one array may hold`);
  }
}
