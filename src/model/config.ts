/**
 * LlamaConfig: the single source of every shape in the model.
 * Names follow Meta's `ModelArgs` (llama/model.py); derived sizes are computed here and nowhere else.
 */
import { UserError } from '../util/errors.js';

export interface LlamaConfig {
  dim: number;
  nLayers: number;
  nHeads: number;
  /** Key/value heads (grouped-query attention). Equal to nHeads for plain multi-head attention. */
  nKvHeads: number;
  vocabSize: number;
  /** SwiGLU hidden size is rounded up to a multiple of this. */
  multipleOf: number;
  /** Optional multiplier applied to the 2/3·4·dim hidden size before rounding (LLaMA-2 70B uses 1.3). */
  ffnDimMultiplier: number | null;
  normEps: number;
  ropeTheta: number;
  maxSeqLen: number;
}

export const DEFAULTS: LlamaConfig = {
  dim: 288,
  nLayers: 6,
  nHeads: 6,
  nKvHeads: 6,
  vocabSize: 32000,
  multipleOf: 256,
  ffnDimMultiplier: null,
  normEps: 1e-5,
  ropeTheta: 10000,
  maxSeqLen: 2048,
};

function preset(p: Partial<LlamaConfig>): LlamaConfig {
  const c = { ...DEFAULTS, ...p };
  if (p.nKvHeads === undefined) c.nKvHeads = c.nHeads;
  return c;
}

/**
 * The paper's models (Table 2 of Touvron et al. 2023) and small ones for this machine.
 * The small presets copy llama2.c's shapes (multipleOf 32, or 4 for 260k) so their checkpoints interoperate.
 * normEps: the paper's models use 1e-6 (Meta's params.json); the small ones 1e-5 as llama2.c does.
 */
export const PRESETS: Record<string, LlamaConfig> = {
  'llama-7b': preset({ dim: 4096, nLayers: 32, nHeads: 32, vocabSize: 32000, multipleOf: 256, normEps: 1e-6, maxSeqLen: 2048 }),
  'llama-13b': preset({ dim: 5120, nLayers: 40, nHeads: 40, vocabSize: 32000, multipleOf: 256, normEps: 1e-6, maxSeqLen: 2048 }),
  'llama-33b': preset({ dim: 6656, nLayers: 60, nHeads: 52, vocabSize: 32000, multipleOf: 256, normEps: 1e-6, maxSeqLen: 2048 }),
  'llama-65b': preset({ dim: 8192, nLayers: 80, nHeads: 64, vocabSize: 32000, multipleOf: 256, normEps: 1e-6, maxSeqLen: 2048 }),
  'mini-260k': preset({ dim: 64, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, multipleOf: 4, maxSeqLen: 512 }),
  'mini-15m': preset({ dim: 288, nLayers: 6, nHeads: 6, vocabSize: 32000, multipleOf: 32, maxSeqLen: 256 }),
  'mini-42m': preset({ dim: 512, nLayers: 8, nHeads: 8, vocabSize: 32000, multipleOf: 32, maxSeqLen: 1024 }),
};

export function presetNames(): string[] {
  return Object.keys(PRESETS);
}

export function getPreset(name: string): LlamaConfig {
  const c = PRESETS[name];
  if (!c) throw new UserError(`unknown preset '${name}' (known: ${presetNames().join(', ')})`);
  return { ...c };
}

/** Build a config from a preset and/or overrides, validating the result. */
export function makeConfig(base: string | Partial<LlamaConfig> | undefined, overrides: Partial<LlamaConfig> = {}): LlamaConfig {
  const c = typeof base === 'string' ? getPreset(base) : preset(base ?? {});
  // Plain multi-head attention stays plain when only the head count is overridden.
  const kvFollowsHeads = c.nKvHeads === c.nHeads && overrides.nKvHeads === undefined;
  const merged = { ...c, ...overrides };
  if (kvFollowsHeads) merged.nKvHeads = merged.nHeads;
  validateConfig(merged);
  return merged;
}

/** Longest context a config may declare: the RoPE table holds maxSeqLen × headDim values. */
export const MAX_SEQ_LEN = 1 << 20;

export function validateConfig(c: LlamaConfig): void {
  const posInt: (keyof LlamaConfig)[] = ['dim', 'nLayers', 'nHeads', 'nKvHeads', 'vocabSize', 'multipleOf', 'maxSeqLen'];
  for (const k of posInt) {
    const v = c[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
      throw new UserError(`invalid config: ${k} must be a positive integer, got ${String(v)}`);
    }
  }
  if (c.maxSeqLen > MAX_SEQ_LEN) throw new UserError(`invalid config: maxSeqLen ${c.maxSeqLen} is larger than ${MAX_SEQ_LEN} (the RoPE table is built for every position)`);
  if (c.dim % c.nHeads !== 0) throw new UserError(`invalid config: dim ${c.dim} is not divisible by nHeads ${c.nHeads}`);
  if (c.nHeads % c.nKvHeads !== 0) {
    throw new UserError(`invalid config: nHeads ${c.nHeads} is not divisible by nKvHeads ${c.nKvHeads}`);
  }
  if ((c.dim / c.nHeads) % 2 !== 0) throw new UserError(`invalid config: head dimension ${c.dim / c.nHeads} must be even for rotary embeddings`);
  if (!(c.normEps > 0)) throw new UserError(`invalid config: normEps must be > 0, got ${c.normEps}`);
  if (!(c.ropeTheta > 0)) throw new UserError(`invalid config: ropeTheta must be > 0, got ${c.ropeTheta}`);
  if (c.ffnDimMultiplier !== null && !(c.ffnDimMultiplier > 0)) {
    throw new UserError(`invalid config: ffnDimMultiplier must be > 0 or null, got ${c.ffnDimMultiplier}`);
  }
}

export function headDim(c: LlamaConfig): number {
  return c.dim / c.nHeads;
}

/** SwiGLU hidden size exactly as Meta's FeedForward computes it. */
export function ffnHiddenDim(c: LlamaConfig): number {
  let hidden = Math.floor((2 * 4 * c.dim) / 3);
  if (c.ffnDimMultiplier !== null) hidden = Math.floor(c.ffnDimMultiplier * hidden);
  return c.multipleOf * Math.ceil(hidden / c.multipleOf);
}

/** Total parameter count (token embeddings + layers + final norm + untied output head). */
export function paramCount(c: LlamaConfig): number {
  return c.vocabSize * c.dim * 2 + c.nLayers * layerParamCount(c) + c.dim;
}

export function layerParamCount(c: LlamaConfig): number {
  const hd = headDim(c);
  const kv = c.nKvHeads * hd;
  const hidden = ffnHiddenDim(c);
  return c.dim * c.dim * 2 + 2 * c.dim * kv + 3 * c.dim * hidden + 2 * c.dim;
}

/**
 * Model FLOPs per trained token (forward + backward), PaLM appendix B: 6·N + 12·L·dim·T,
 * where N counts the parameters used in matrix products (all but the embedding lookup table)
 * and T is the sequence length (attention scores and mixing).
 */
export function trainFlopsPerToken(c: LlamaConfig, seqLen: number): number {
  const n = paramCount(c) - c.vocabSize * c.dim;
  return 6 * n + 12 * c.nLayers * c.dim * seqLen;
}

/** Parse a config from JSON: accepts our camelCase keys and Meta's params.json keys. */
export function configFromJson(obj: unknown, source = 'config'): LlamaConfig {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new UserError(`${source}: expected a JSON object`);
  const o = obj as Record<string, unknown>;
  const alias: Record<string, keyof LlamaConfig> = {
    dim: 'dim', n_layers: 'nLayers', nLayers: 'nLayers', n_heads: 'nHeads', nHeads: 'nHeads', n_kv_heads: 'nKvHeads',
    nKvHeads: 'nKvHeads', vocab_size: 'vocabSize', vocabSize: 'vocabSize', multiple_of: 'multipleOf', multipleOf: 'multipleOf',
    ffn_dim_multiplier: 'ffnDimMultiplier', ffnDimMultiplier: 'ffnDimMultiplier', norm_eps: 'normEps', normEps: 'normEps',
    rope_theta: 'ropeTheta', ropeTheta: 'ropeTheta', max_seq_len: 'maxSeqLen', maxSeqLen: 'maxSeqLen',
  };
  const partial: Partial<LlamaConfig> = {};
  let base: string | undefined;
  for (const [k, v] of Object.entries(o)) {
    if (k === 'preset') {
      if (typeof v !== 'string') throw new UserError(`${source}: 'preset' must be a string`);
      base = v;
      continue;
    }
    const key = alias[k];
    if (!key) throw new UserError(`${source}: unknown config key '${k}'`);
    if (v !== null && typeof v !== 'number') throw new UserError(`${source}: '${k}' must be a number`);
    (partial as Record<string, unknown>)[key] = v;
  }
  return makeConfig(base, partial);
}

export function describeConfig(c: LlamaConfig): string {
  return `dim ${c.dim}, layers ${c.nLayers}, heads ${c.nHeads}/${c.nKvHeads} kv, ffn ${ffnHiddenDim(c)}, vocab ${c.vocabSize}, seq ${c.maxSeqLen}`;
}
