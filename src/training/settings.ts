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
import { ADAMW_DEFAULTS } from './optimizer.js';
import { parseInteger, parseNumber } from '../util/parse.js';
import { UserError } from '../util/errors.js';

/** The section of `--help` a setting is listed under. */
export type SettingGroup = 'schedule' | 'optim' | 'eval' | 'ckpt' | 'misc';

/** What a setting's default may depend on: the model, and the settings before it in the table. */
export interface FitContext {
  config: LlamaConfig;
  settings: Readonly<Record<string, number>>;
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

export const TRAIN_SETTINGS = {
  steps: { flag: 'steps', group: 'schedule', arg: 'N', default: 1000, ...integer(1), doc: 'total optimizer steps; the cosine schedule ends at the last' },
  batch: { flag: 'batch', group: 'schedule', arg: 'B', default: 8, ...integer(1), doc: 'sequences per micro-batch' },
  seq: {
    flag: 'seq', group: 'schedule', arg: 'T', default: 256, ...integer(1), doc: "tokens per sequence; given, it also sets the model's maxSeqLen",
    defaultDoc: 'the model max, at most 256', fit: (d, { config }) => Math.min(config.maxSeqLen, d),
    check: (v, { config }) => (v > config.maxSeqLen ? `${v} exceeds the model's maxSeqLen ${config.maxSeqLen}` : undefined),
  },
  accum: { flag: 'accum', group: 'schedule', arg: 'K', default: 1, ...integer(1), doc: 'micro-batches per optimizer step: gradient accumulation' },
  lr: { flag: 'lr', group: 'schedule', arg: 'PEAK', default: 1e-3, ...real, doc: 'peak learning rate, reached at the end of warmup', check: positive },
  warmup: {
    flag: 'warmup', group: 'schedule', arg: 'N', default: 100, ...integer(0), doc: 'steps of linear warmup, at most --steps',
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
  seed: { flag: 'seed', group: 'misc', arg: 'S', default: 1337, ...integer(0), doc: 'seed of the initial weights and of the data order' },
  evalEvery: { flag: 'eval-every', group: 'eval', arg: 'N', default: 100, ...integer(0), doc: 'held-out loss every N steps, besides at the start and the end; 0: only those' },
  evalBatches: { flag: 'eval-batches', group: 'eval', arg: 'N', default: 8, ...integer(0), doc: 'held-out batches per evaluation; 0: no evaluation' },
  ckptEvery: { flag: 'ckpt-every', group: 'ckpt', arg: 'N', default: 200, ...integer(0), doc: 'checkpoint every N steps, besides at the end; 0: only at the end' },
} as const satisfies Record<string, Setting>;

export type SettingKey = keyof typeof TRAIN_SETTINGS;

/** A full set of training settings: one number per row of the table. */
export type Hyper = { -readonly [K in SettingKey]: ReturnType<(typeof TRAIN_SETTINGS)[K]['parse']> };

/** The rows in table order, each with its key. */
export const SETTINGS: readonly (Setting & { key: SettingKey })[] = Object.entries(TRAIN_SETTINGS).map(([key, s]) => ({ key: key as SettingKey, ...s }));

export const HYPER_DEFAULTS: Hyper = Object.fromEntries(SETTINGS.map((s) => [s.key, s.default])) as Hyper;

/**
 * The given settings, the rest from `base` (default: HYPER_DEFAULTS) fitted to the model and to the given ones
 * (the sequence length defaults to at most the model's maxSeqLen, warmup to at most the step count).
 */
export function resolveHyper(given: Partial<Hyper>, config: LlamaConfig, base: Hyper = HYPER_DEFAULTS): Hyper {
  const h: Record<string, number> = {};
  for (const s of SETTINGS) {
    const v = given[s.key];
    h[s.key] = v !== undefined ? v : s.fit ? s.fit(base[s.key], { config, settings: h }) : base[s.key];
  }
  return h as Hyper;
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
  const ctx: FitContext = { config, settings: h };
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
