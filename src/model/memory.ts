/**
 * The memory a run needs, from the shapes alone (before anything is allocated): what `llama-ts train`, `bench train`,
 * `generate` and `convert` hold against the machine's available memory, and what `info` prints.
 *
 * Training, per rank: the weights and gradients of this rank's tensor-parallel shard (paramLayout), the two AdamW
 * moments (divided over the data-parallel ranks with ZeRO-1), the activations `Llama` keeps for the backward at the
 * chosen batch, sequence, recompute policy and dtype (activationLayoutBytes: the same layout function the model allocates with;
 * sequence parallelism divides the
 * residual stream), and, with tensor parallelism or ZeRO, the whole tensors a checkpoint gathers. Inference: the
 * weights, the source's copy while loading, and the KV caches.
 */
import { activationLayoutBytes, type DTypeName, type Recompute } from './llama.js';
import { paramLayout } from './params.js';
import { headDim, type LlamaConfig } from './config.js';

export interface MemoryNeed {
  /** Bytes by what holds them, in the order printed. */
  parts: { name: string; bytes: number }[];
  total: number;
}

/** Node, the data pipeline and other small buffers: a fixed allowance. */
export const RUNTIME_BYTES = 128 * 2 ** 20;

function need(parts: { name: string; bytes: number }[]): MemoryNeed {
  const kept = parts.filter((p) => p.bytes > 0);
  return { parts: kept, total: kept.reduce((a, p) => a + p.bytes, 0) };
}

export interface TrainingShape {
  batch: number;
  seq: number;
  /** Tensor-parallel ranks per model (default 1). */
  tp?: number;
  sp?: boolean;
  /** Data-parallel ranks (default 1): ZeRO-1 divides the moments among them. */
  dp?: number;
  zero?: 0 | 1;
  /** 4 (float32) or 8 (the ref-f64 backend). */
  bytesPerFloat?: number;
  /** Activation checkpointing policy (default none). */
  recompute?: Recompute;
  /** bf16: bfloat16 saved activations and a bf16 copy of the weights (default f32). */
  dtype?: DTypeName;
}

/** One training rank's memory. */
export function trainingMemory(c: LlamaConfig, o: TrainingShape): MemoryNeed {
  const tp = o.tp ?? 1;
  const dp = o.dp ?? 1;
  const f = o.bytesPerFloat ?? 4;
  const shard = paramLayout(c, { size: tp, rank: 0 }).total;
  const whole = paramLayout(c).total;
  const zero = o.zero === 1 && dp > 1;
  const gathered = (tp > 1 ? 3 * whole : zero ? 2 * whole : 0) * f;
  return need([
    { name: 'weights', bytes: shard * f + (o.dtype === 'bf16' ? shard * 2 : 0) },
    { name: 'gradients', bytes: shard * f },
    { name: 'AdamW', bytes: 2 * Math.ceil(shard / (zero ? dp : 1)) * f },
    { name: 'activations', bytes: activationLayoutBytes(c, o.batch, o.seq, { tp, sp: o.sp, recompute: o.recompute, dtype: o.dtype, bytesPerFloat: f }) },
    { name: 'checkpoint gather', bytes: gathered },
    { name: 'runtime', bytes: RUNTIME_BYTES },
  ]);
}

/**
 * A whole model loaded for inference or conversion: weights, the source's float32 copy while loading, `caches` KV
 * caches of `context` positions. `weightBytes` replaces the float32 size of the weights when the loader knows better
 * (mapped files, quantized blocks: io/formats.ts WeightFootprint); `loadingCopy: false` when the weights are views of
 * a mapped file (no float32 copy of the model is made while loading).
 */
export function inferenceMemory(c: LlamaConfig, o: { caches?: number; context?: number; bytesPerFloat?: number; weightBytes?: number; loadingCopy?: boolean; kvBytes?: number } = {}): MemoryNeed {
  const f = o.bytesPerFloat ?? 4;
  const n = paramLayout(c).total;
  const kv = 2 * c.nLayers * (o.context ?? c.maxSeqLen) * c.nKvHeads * headDim(c) * (o.caches ?? 0);
  return need([
    { name: 'weights', bytes: o.weightBytes ?? n * f },
    { name: 'loading copy', bytes: o.loadingCopy === false ? 0 : n * 4 },
    { name: 'KV caches', bytes: kv * (o.kvBytes ?? f) }, // kvBytes: 2 for an F16 cache (--kv-cache f16)
    { name: 'runtime', bytes: RUNTIME_BYTES },
  ]);
}

export function gib(b: number): string {
  if (b >= 2 ** 30) return `${(b / 2 ** 30).toFixed(1)} GiB`;
  return b >= 2 ** 20 ? `${(b / 2 ** 20).toFixed(0)} MiB` : `${(b / 2 ** 10).toFixed(0)} KiB`;
}

/** 'weights 25.1 GiB + gradients … ' */
export function describeNeed(m: MemoryNeed): string {
  return m.parts.map((p) => `${p.name} ${gib(p.bytes)}`).join(' + ');
}
