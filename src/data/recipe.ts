/**
 * Mixture recipes: which sources, how to read and clean them, and how often to sample each.
 *
 * Sampling shares (see docs/DATA.md):
 *   - a source with `epochs` e (and no weight) takes the fixed share  e · T_i / B  of the budget B;
 *   - the remaining share is split between sources with `weight` in proportion to their weights;
 *   - each source is then seen  epochs_i = share_i · B / T_i  times (T_i = its training tokens).
 * LLaMA's Table 1 lists share_i and epochs_i; e.g. Wikipedia 4.5% of 1.4T at 2.45 epochs ⇔ T ≈ 25.7B tokens.
 */
import { dirname, resolve } from 'node:path';
import { readFileSync } from 'node:fs';
import { UserError } from '../util/errors.js';
import { CLEAN_DEFAULTS, type CleanOptions } from './clean.js';
import type { BadRecordPolicy, IngestSpec, SourceFormat } from './ingest.js';

export interface SourceRecipe extends IngestSpec {
  weight?: number;
  epochs?: number;
  /** Known or estimated training tokens (used by `data plan` when there is no prepared data). */
  tokens?: number;
  /** For estimates from the size on disk when `tokens` is not given. */
  bytesPerToken?: number;
  clean: CleanOptions;
}

export interface Recipe {
  name: string;
  path: string | null;
  seed: number;
  totalTokens: number;
  heldOutFraction: number;
  repeatWarning: number;
  shardTokens: number;
  sources: SourceRecipe[];
}

const FORMATS: SourceFormat[] = ['text', 'jsonl', 'parquet', 'brown'];
const CLEAN_KEYS: Record<string, keyof CleanOptions> = {
  normalize: 'normalize', dedup_docs: 'dedupDocs', dedup_lines: 'dedupLines', line_dedup_min_chars: 'lineDedupMinChars',
  min_chars: 'minChars', min_alpha_share: 'minAlphaShare', max_line_repeat: 'maxLineRepeat',
};

/** Parses 1.4T / 24B / 500M / 2e9 / plain numbers. */
export function parseCount(v: unknown, what: string): number {
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return v;
  if (typeof v === 'string') {
    const m = /^\s*([0-9.]+(?:e[+-]?\d+)?)\s*([kKmMbBtT]?)\s*$/.exec(v);
    if (m) {
      const mult = { '': 1, k: 1e3, m: 1e6, b: 1e9, t: 1e12 }[m[2].toLowerCase() as '' | 'k' | 'm' | 'b' | 't'];
      const n = Number(m[1]) * mult;
      if (Number.isFinite(n)) return n;
    }
  }
  throw new UserError(`${what} must be a non-negative number (e.g. 2000000, "24B", "1.4T"), got ${JSON.stringify(v)}`);
}

function parseClean(v: unknown, base: CleanOptions, where: string): CleanOptions {
  if (v === undefined) return { ...base };
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new UserError(`${where}.clean must be an object`);
  const out = { ...base };
  for (const [k, val] of Object.entries(v)) {
    const key = CLEAN_KEYS[k];
    if (!key) throw new UserError(`${where}.clean: unknown key '${k}' (known: ${Object.keys(CLEAN_KEYS).join(', ')})`);
    if (typeof base[key] === 'boolean') {
      if (typeof val !== 'boolean') throw new UserError(`${where}.clean.${k} must be true or false`);
      (out as Record<string, unknown>)[key] = val;
    } else {
      if (typeof val !== 'number' || !Number.isFinite(val) || val < 0) throw new UserError(`${where}.clean.${k} must be a non-negative number`);
      (out as Record<string, unknown>)[key] = val;
    }
  }
  if (out.minAlphaShare > 1) throw new UserError(`${where}.clean.min_alpha_share must be in [0, 1]`);
  return out;
}

function checkKeys(o: Record<string, unknown>, known: string[], where: string): void {
  for (const k of Object.keys(o)) if (!known.includes(k)) throw new UserError(`${where}: unknown key '${k}' (known: ${known.join(', ')})`);
}

/** Validates a recipe object; relative source paths are resolved against `baseDir`. */
export function parseRecipe(json: unknown, baseDir: string, path: string | null = null, onBadRecord?: BadRecordPolicy): Recipe {
  const where = path ? `recipe '${path}'` : 'recipe';
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new UserError(`${where} must be a JSON object`);
  const r = json as Record<string, unknown>;
  checkKeys(r, ['name', 'description', 'seed', 'total_tokens', 'held_out_fraction', 'repeat_warning', 'shard_tokens', 'clean', 'on_bad_record', 'sources'], where);
  const seed = r.seed === undefined ? 1 : r.seed;
  if (!Number.isInteger(seed) || (seed as number) < 0) throw new UserError(`${where}: seed must be a non-negative integer`);
  if (r.total_tokens === undefined) throw new UserError(`${where}: total_tokens (the token budget) is required`);
  const totalTokens = parseCount(r.total_tokens, `${where}: total_tokens`);
  if (!(totalTokens > 0)) throw new UserError(`${where}: total_tokens must be > 0`);
  const heldOutFraction = r.held_out_fraction === undefined ? 0.01 : r.held_out_fraction;
  if (typeof heldOutFraction !== 'number' || !(heldOutFraction >= 0 && heldOutFraction < 0.5)) throw new UserError(`${where}: held_out_fraction must be in [0, 0.5)`);
  const repeatWarning = r.repeat_warning === undefined ? 4 : r.repeat_warning;
  if (typeof repeatWarning !== 'number' || !(repeatWarning > 0)) throw new UserError(`${where}: repeat_warning must be > 0`);
  const shardTokens = r.shard_tokens === undefined ? 1 << 24 : parseCount(r.shard_tokens, `${where}: shard_tokens`);
  if (!Number.isInteger(shardTokens) || shardTokens < 1024 || shardTokens > 2 ** 31) throw new UserError(`${where}: shard_tokens must be an integer in [1024, 2^31]`);
  const policy = onBadRecord ?? (r.on_bad_record === undefined ? 'fail' : r.on_bad_record);
  if (policy !== 'fail' && policy !== 'skip') throw new UserError(`${where}: on_bad_record must be "fail" or "skip"`);
  const clean = parseClean(r.clean, CLEAN_DEFAULTS, where);
  if (!Array.isArray(r.sources) || r.sources.length === 0) throw new UserError(`${where}: sources must be a non-empty array`);
  const names = new Set<string>();
  const sources = r.sources.map((s: unknown, i: number): SourceRecipe => {
    const sw = `${where} sources[${i}]`;
    if (s === null || typeof s !== 'object' || Array.isArray(s)) throw new UserError(`${sw} must be an object`);
    const o = s as Record<string, unknown>;
    checkKeys(o, ['name', 'path', 'format', 'text_field', 'separator', 'weight', 'epochs', 'tokens', 'bytes_per_token', 'clean', 'license', 'description'], sw);
    if (typeof o.name !== 'string' || !/^[A-Za-z0-9._-]+$/.test(o.name)) throw new UserError(`${sw}: name must be a string of letters, digits, '.', '_' or '-'`);
    if (names.has(o.name)) throw new UserError(`${sw}: duplicate source name '${o.name}'`);
    names.add(o.name);
    const format = (o.format ?? 'text') as SourceFormat;
    if (!FORMATS.includes(format)) throw new UserError(`${sw}: format must be one of ${FORMATS.join(', ')}`);
    let paths: string[] = [];
    if (format !== 'brown') {
      const p = o.path;
      const list = typeof p === 'string' ? [p] : Array.isArray(p) && p.every((x) => typeof x === 'string') ? (p as string[]) : null;
      if (!list || list.length === 0) throw new UserError(`${sw} ('${o.name}'): path must be a string or a list of strings`);
      paths = list.map((x) => resolve(baseDir, x));
    }
    if (o.weight === undefined && o.epochs === undefined) throw new UserError(`${sw} ('${o.name}'): give a sampling weight or target epochs`);
    if (o.weight !== undefined && (typeof o.weight !== 'number' || !(o.weight > 0))) throw new UserError(`${sw} ('${o.name}'): weight must be a number > 0`);
    if (o.epochs !== undefined && (typeof o.epochs !== 'number' || !(o.epochs > 0))) throw new UserError(`${sw} ('${o.name}'): epochs must be a number > 0`);
    if (o.text_field !== undefined && typeof o.text_field !== 'string') throw new UserError(`${sw}: text_field must be a string`);
    if (o.separator !== undefined && o.separator !== null && typeof o.separator !== 'string') throw new UserError(`${sw}: separator must be a string or null`);
    const bpt = o.bytes_per_token === undefined ? undefined : Number(o.bytes_per_token);
    if (bpt !== undefined && !(bpt > 0)) throw new UserError(`${sw}: bytes_per_token must be > 0`);
    return {
      name: o.name, paths, format, textField: o.text_field as string | undefined, separator: (o.separator as string | null | undefined) ?? null,
      onBadRecord: policy, weight: o.weight as number | undefined, epochs: o.epochs as number | undefined,
      tokens: o.tokens === undefined ? undefined : parseCount(o.tokens, `${sw}: tokens`), bytesPerToken: bpt,
      clean: parseClean(o.clean, clean, sw),
    };
  });
  return { name: typeof r.name === 'string' ? r.name : 'recipe', path, seed: seed as number, totalTokens, heldOutFraction, repeatWarning, shardTokens, sources };
}

export function loadRecipe(path: string, onBadRecord?: BadRecordPolicy): Recipe {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UserError(`cannot read recipe '${path}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UserError(`recipe '${path}' is not valid JSON: ${(e as Error).message}`);
  }
  return parseRecipe(json, dirname(resolve(path)), path, onBadRecord);
}

export interface PlanRow {
  name: string;
  tokens: number;
  share: number;
  /** Tokens drawn from this source over the budget. */
  drawn: number;
  epochs: number;
  weight?: number;
  targetEpochs?: number;
}

export interface MixturePlan {
  totalTokens: number;
  rows: PlanRow[];
  warnings: string[];
}

/** Shares and implied epochs for a budget, given each source's training tokens. */
export function planMixture(
  sources: { name: string; weight?: number; epochs?: number; tokens: number }[],
  totalTokens: number,
  repeatWarning = Infinity,
): MixturePlan {
  const warnings: string[] = [];
  for (const s of sources) if (!(s.tokens > 0)) throw new UserError(`source '${s.name}' has no training tokens`);
  let fixed = 0;
  let weightSum = 0;
  for (const s of sources) {
    if (s.weight !== undefined) weightSum += s.weight;
    else fixed += ((s.epochs ?? 0) * s.tokens) / totalTokens;
  }
  const rest = 1 - fixed;
  if (rest < -1e-9 || (weightSum > 0 && rest <= 1e-9)) {
    throw new UserError(`the sources' target epochs alone need ${(fixed * 100).toFixed(1)}% of the budget of ${fmtCount(totalTokens)} tokens${weightSum > 0 ? ', leaving nothing for the weighted sources' : ''}: lower the epochs or raise total_tokens`);
  }
  let scale = 1;
  if (weightSum === 0 && Math.abs(rest) > 1e-9) {
    warnings.push(`target epochs fill ${(fixed * 100).toFixed(1)}% of the budget; shares are scaled to 100% (epochs scale with them)`);
    scale = 1 / fixed;
  }
  const rows = sources.map((s): PlanRow => {
    const share = s.weight !== undefined ? (rest * s.weight) / weightSum : (((s.epochs ?? 0) * s.tokens) / totalTokens) * scale;
    const drawn = share * totalTokens;
    return { name: s.name, tokens: s.tokens, share, drawn, epochs: drawn / s.tokens, weight: s.weight, targetEpochs: s.epochs };
  });
  for (const r of rows) {
    if (r.epochs > repeatWarning) warnings.push(`source '${r.name}' would be repeated ${r.epochs.toFixed(2)} times (more than ${repeatWarning}): add data or lower its weight`);
    if (r.weight !== undefined && r.targetEpochs !== undefined && Math.abs(r.epochs / r.targetEpochs - 1) > 0.1) {
      warnings.push(`source '${r.name}': its weight implies ${r.epochs.toFixed(2)} epochs, not the target ${r.targetEpochs}`);
    }
  }
  return { totalTokens, rows, warnings };
}

export function fmtCount(n: number): string {
  const a = Math.abs(n);
  if (a >= 1e12) return `${(n / 1e12).toFixed(2)}T`;
  if (a >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (a >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (a >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return n.toFixed(0);
}
