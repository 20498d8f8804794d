/**
 * The training settings, declared once (after torchtitan's config/configs.py). Each row of `TRAIN_SETTINGS` holds a
 * setting's key, command-line flag, default, help text, parser and check; everything else is derived from it:
 *   Hyper                 the type of a full set of settings (inferred from the table)
 *   HYPER_DEFAULTS        the defaults
 *   resolveHyper          given settings + defaults fitted to the model (seq) and to each other (warmup ≤ steps)
 *   checkHyper            validation before a run starts (and after a resume)
 * and, in the CLI, the option list and the `--help` text (cli/train.ts).
 *
 * The keys are also the names under which a checkpoint stores its settings (`hyper` in state.json): renaming a key
 * breaks the resume of older runs. Table order is the order of `--help` within a group and of the checks.
 */
import type { LlamaConfig } from '../model/config.js';
import { DTYPES, type DTypeName } from '../model/llama.js';
import { ADAMW_DEFAULTS } from './optimizer.js';
import type { Recipe } from '../model/recipe.js';
import { parseInteger, parseNumber, parseQuantity } from '../util/parse.js';
import { UserError } from '../util/errors.js';

/** The section of `--help` a setting is listed under. */
export type SettingGroup = 'schedule' | 'optim' | 'finetune' | 'eval' | 'ckpt' | 'misc';

/**
 * What a setting's default may depend on: the model, the settings before it in the table, the ones given on the
 * command line, and the number of data-parallel ranks (a global batch in tokens is shared among them).
 */
export interface FitContext {
  config: LlamaConfig;
  settings: Readonly<Record<string, number>>;
  given: Readonly<Partial<Record<string, number>>>;
  /** Data-parallel ranks (world / tp under mpirun; 1 in one process). */
  dp: number;
}

export interface Setting {
  /** Command-line flag, without the dashes. */
  readonly flag: string;
  readonly group: SettingGroup;
  /** Placeholder for the value in `--help`. */
  readonly arg: string;
  readonly default: number;
  /** One line for `--help`. */
  readonly doc: string;
  /** How `--help` shows the default, when not simply the number (it depends on the model or another setting). */
  readonly defaultDoc?: string;
  /** Integer settings: the smallest value allowed. Absent for real-valued settings. */
  readonly min?: number;
  /** The value of the flag's text; throws a one-line UserError naming the flag. */
  readonly parse: (text: string | boolean, flag: string) => number;
  /** The default fitted to the model and the earlier settings (seq ≤ the model's maxSeqLen, warmup ≤ steps). */
  readonly fit?: (dflt: number, ctx: FitContext) => number;
  /** A complaint about a value (the message after `--flag`), or undefined when it is fine. Integer range is checked from `min`. */
  readonly check?: (value: number, ctx: FitContext) => string | undefined;
}

const integer = (min: number) => ({ min, parse: (text: string | boolean, flag: string) => parseInteger(text, flag, min) });
const real = { parse: (text: string | boolean, flag: string) => parseNumber(text, flag) };
const positive = (v: number) => (v > 0 ? undefined : `must be > 0, got ${v}`);
const unitOpen = (v: number) => (v >= 0 && v < 1 ? undefined : `must be in [0, 1), got ${v}`);

const quantity = { min: 0, parse: (text: string | boolean, flag: string) => parseQuantity(text, flag) };

/** Sequences per step on each data-parallel rank (batch × accum) for a global batch of `batchTokens`. */
function perRankSequences({ settings, dp }: FitContext): number {
  return Math.max(1, Math.round(settings.batchTokens / (settings.seq * dp)));
}

/** The largest divisor of n that is at most cap (so that batch × accum is exactly n). */
function divisorAtMost(n: number, cap: number): number {
  for (let d = Math.min(n, Math.max(1, cap)); d > 1; d--) if (n % d === 0) return d;
  return 1;
}

// Order matters: a default is fitted from the rows above it (seq before the batch, the batch before the steps).
export const TRAIN_SETTINGS = {
  seq: {
    flag: 'seq', group: 'schedule', arg: 'T', default: 256, ...integer(1), doc: "tokens per sequence; given, it also sets the model's maxSeqLen",
    defaultDoc: "the preset's context, else 256, at most the model max", fit: (d, { config }) => Math.min(config.maxSeqLen, d),
    check: (v, { config }) => (v > config.maxSeqLen ? `${v} exceeds the model's maxSeqLen ${config.maxSeqLen}` : undefined),
  },
  batchTokens: {
    flag: 'batch-tokens', group: 'schedule', arg: 'X', default: 0, ...quantity,
    doc: 'global batch in tokens (4Mi, 4194304): batch × seq × accum × data-parallel ranks, setting whichever of --batch/--accum is not given; 0: --batch × --accum',
    defaultDoc: "the preset's recipe, else 0",
  },
  batch: {
    flag: 'batch', group: 'schedule', arg: 'B', default: 8, ...integer(1), doc: 'sequences per micro-batch',
    defaultDoc: "8, or the recipe's micro-batch fitted to --batch-tokens",
    // with a batch in tokens: the recipe's micro-batch, or what --accum leaves, dividing the rank's sequences
    fit: (d, ctx) => (ctx.settings.batchTokens > 0 ? (ctx.given.accum !== undefined ? Math.max(1, Math.round(perRankSequences(ctx) / ctx.given.accum)) : divisorAtMost(perRankSequences(ctx), d)) : d),
  },
  accum: {
    flag: 'accum', group: 'schedule', arg: 'K', default: 1, ...integer(1), doc: 'micro-batches per optimizer step: gradient accumulation',
    defaultDoc: '1, or what --batch-tokens needs', fit: (d, ctx) => (ctx.settings.batchTokens > 0 ? Math.max(1, Math.round(perRankSequences(ctx) / ctx.settings.batch)) : d),
  },
  tokens: {
    flag: 'tokens', group: 'schedule', arg: 'X', default: 0, ...quantity, doc: 'training tokens in all (1.4T, 2e6): sets --steps when it is not given; 0: --steps',
    defaultDoc: "the preset's recipe, else 0",
  },
  steps: {
    flag: 'steps', group: 'schedule', arg: 'N', default: 1000, ...integer(1), doc: 'total optimizer steps; the cosine schedule ends at the last',
    defaultDoc: '1000, or --tokens / the global batch',
    fit: (d, { settings: h, dp }) => (h.tokens > 0 ? Math.max(1, Math.ceil(h.tokens / (h.batch * h.seq * h.accum * dp))) : d),
  },
  lr: { flag: 'lr', group: 'schedule', arg: 'PEAK', default: 1e-3, ...real, doc: 'peak learning rate, reached at the end of warmup', defaultDoc: "the preset's recipe, else 0.001", check: positive },
  warmup: {
    flag: 'warmup', group: 'schedule', arg: 'N', default: 100, ...integer(0), doc: 'steps of linear warmup, at most --steps', defaultDoc: "the preset's recipe, else 100, at most --steps",
    fit: (d, { settings }) => Math.min(d, settings.steps),
    check: (v, { settings }) => (v >= 0 && v <= settings.steps ? undefined : `must be between 0 and --steps (${settings.steps}), got ${v}`),
  },
  minLrRatio: {
    flag: 'min-lr-ratio', group: 'schedule', arg: 'R', default: 0.1, ...real, doc: 'final learning rate of the cosine decay, as a fraction of the peak',
    check: (v) => (v >= 0 && v <= 1 ? undefined : `must be in [0, 1], got ${v}`),
  },
  clip: { flag: 'clip', group: 'optim', arg: 'NORM', default: 1.0, ...real, doc: 'clip the global gradient norm to NORM; 0: no clipping' },
  beta1: { flag: 'beta1', group: 'optim', arg: 'B1', default: ADAMW_DEFAULTS.beta1, ...real, doc: 'AdamW first-moment decay', check: unitOpen },
  beta2: { flag: 'beta2', group: 'optim', arg: 'B2', default: ADAMW_DEFAULTS.beta2, ...real, doc: 'AdamW second-moment decay', check: unitOpen },
  eps: { flag: 'eps', group: 'optim', arg: 'E', default: ADAMW_DEFAULTS.eps, ...real, doc: 'AdamW epsilon', check: positive },
  weightDecay: { flag: 'weight-decay', group: 'optim', arg: 'WD', default: ADAMW_DEFAULTS.weightDecay, ...real, doc: 'AdamW decoupled weight decay, on matrices only' },
  loraRank: {
    flag: 'lora', group: 'finetune', arg: 'R', default: 0, min: 0, parse: (text: string | boolean, flag: string) => parseInteger(text, flag, 1),
    doc: 'train LoRA adapters of rank R over the --init-from model, its weights frozen (docs/FINETUNE.md)', defaultDoc: 'none: train all weights',
  },
  loraAlpha: {
    flag: 'lora-alpha', group: 'finetune', arg: 'A', default: 0, ...real, doc: 'LoRA alpha: the adapter adds (A/R)·B·A to each adapted weight', defaultDoc: 'R, a scale of 1',
    fit: (d, { settings }) => (d > 0 ? d : settings.loraRank), check: (v, { settings }) => (settings.loraRank === 0 || v > 0 ? undefined : `must be > 0, got ${v}`),
  },
  seed: { flag: 'seed', group: 'misc', arg: 'S', default: 1337, ...integer(0), doc: 'seed of the initial weights and of the data order' },
  evalEvery: { flag: 'eval-every', group: 'eval', arg: 'N', default: 100, ...integer(0), doc: 'held-out loss every N steps, besides at the start and the end; 0: only those' },
  evalBatches: { flag: 'eval-batches', group: 'eval', arg: 'N', default: 8, ...integer(0), doc: 'held-out batches per evaluation; 0: no evaluation' },
  ckptEvery: { flag: 'ckpt-every', group: 'ckpt', arg: 'N', default: 200, ...integer(0), doc: 'checkpoint every N steps, besides at the end; 0: only at the end' },
  // stored as the bits of a matmul input (32 or 16) so that a checkpoint keeps it and a resume continues in it
  dtype: {
    flag: 'dtype', group: 'misc', arg: 'f32|bf16', default: 32, defaultDoc: 'f32',
    doc: 'precision of the matmuls and saved activations: bf16 = bfloat16 inputs, float32 master weights, gradients, AdamW moments, softmax and loss',
    parse: (text: string | boolean, flag: string) => {
      const bits = DTYPE_BITS[String(text) as DTypeName];
      if (bits === undefined) throw new UserError(`--${flag} must be one of ${DTYPES.join(', ')}, got '${String(text)}'`);
      return bits;
    },
    check: (v) => (v === 32 || v === 16 ? undefined : `must be f32 or bf16 (stored as 32 or 16), got ${v}`),
  },
} as const satisfies Record<string, Setting>;

export type SettingKey = keyof typeof TRAIN_SETTINGS;

/** A full set of training settings: one number per row of the table. */
export type Hyper = { -readonly [K in SettingKey]: ReturnType<(typeof TRAIN_SETTINGS)[K]['parse']> };

const DTYPE_BITS: Record<DTypeName, number> = { f32: 32, bf16: 16 };

/** The precision a set of settings trains in (the `dtype` row: 32 or 16 bits). */
export function dtypeOf(h: Pick<Hyper, 'dtype'>): DTypeName {
  return h.dtype === 16 ? 'bf16' : 'f32';
}

/** The rows in table order, each with its key. */
export const SETTINGS: readonly (Setting & { key: SettingKey })[] = Object.entries(TRAIN_SETTINGS).map(([key, s]) => ({ key: key as SettingKey, ...s }));

export const HYPER_DEFAULTS: Hyper = Object.fromEntries(SETTINGS.map((s) => [s.key, s.default])) as Hyper;

/**
 * The given settings, the rest from `base` (default: HYPER_DEFAULTS) fitted to the model and to the given ones
 * (the sequence length defaults to at most the model's maxSeqLen, warmup to at most the step count; with a batch in
 * tokens, the batch and accumulation that make it up over `dp` data-parallel ranks; with a token budget, the steps).
 */
export function resolveHyper(given: Partial<Hyper>, config: LlamaConfig, base: Hyper = HYPER_DEFAULTS, dp = 1): Hyper {
  const h: Record<string, number> = {};
  for (const s of SETTINGS) {
    const v = given[s.key];
    h[s.key] = v !== undefined ? v : s.fit ? s.fit(base[s.key], { config, settings: h, given, dp }) : base[s.key];
  }
  return h as Hyper;
}

/** A preset's recipe (model/recipe.ts) as the defaults of a run: its schedule, batch in tokens, budget and AdamW. */
export function recipeHyper(r: Recipe, base: Hyper = HYPER_DEFAULTS): Hyper {
  return {
    ...base, seq: r.seq, batchTokens: r.batchTokens, batch: r.microBatch, tokens: r.tokens, lr: r.lr, warmup: r.warmup, minLrRatio: r.minLrRatio,
    clip: r.clip, beta1: r.beta1, beta2: r.beta2, eps: r.eps, weightDecay: r.weightDecay,
  };
}

/**
 * The settings a checkpoint saved (state.json `hyper`), as a full set: keys the table no longer has are dropped, and
 * keys it did not have yet take today's defaults (the behaviour before the setting existed).
 */
export function hyperFromSaved(saved: Readonly<Record<string, unknown>>): Hyper {
  return Object.fromEntries(SETTINGS.map((s) => [s.key, saved[s.key] ?? s.default])) as Hyper;
}

/** Throws a one-line UserError naming the first setting (in table order) whose value is not allowed for this model. */
export function checkHyper(h: Hyper, config: LlamaConfig): void {
  const ctx: FitContext = { config, settings: h, given: h, dp: 1 };
  for (const s of SETTINGS) {
    const v = h[s.key];
    if (typeof v !== 'number' || Number.isNaN(v)) throw new UserError(`--${s.flag} must be a number, got ${String(v)}`);
    if (s.min !== undefined && (!Number.isInteger(v) || v < s.min)) {
      throw new UserError(`--${s.flag} must be a ${s.min >= 1 ? 'positive' : 'non-negative'} integer, got ${v}`);
    }
    const complaint = s.check?.(v, ctx);
    if (complaint) throw new UserError(`--${s.flag} ${complaint}`);
  }
}
