/** Options and helpers shared by several subcommands. */
import { readFileSync } from 'node:fs';
import type { Options, Values } from './args.js';
import { int, num, str } from './args.js';
import { configFromJson, makeConfig, type LlamaConfig } from '../model/config.js';
import { UserError } from '../util/errors.js';
import { availableMemory } from '../util/memory.js';
import { describeNeed, gib, type MemoryNeed } from '../model/memory.js';

export const configOptions: Options = {
  preset: { type: 'string' },
  config: { type: 'string' },
  dim: { type: 'string' },
  layers: { type: 'string' },
  heads: { type: 'string' },
  'kv-heads': { type: 'string' },
  vocab: { type: 'string' },
  seq: { type: 'string' },
  'multiple-of': { type: 'string' },
};


export function readJsonFile(path: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UserError(`cannot read ${what} '${path}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UserError(`${what} '${path}' is not valid JSON: ${(e as Error).message}`);
  }
}

/** Config from --preset or --config, with per-field flag overrides. */
export function loadConfigArg(values: Values, fallbackPreset?: string): LlamaConfig {
  const overrides: Partial<LlamaConfig> = {};
  const set = (flag: string, key: keyof LlamaConfig) => {
    const v = int(values[flag], flag, undefined, 1);
    if (v !== undefined) (overrides as Record<string, number>)[key] = v;
  };
  set('dim', 'dim');
  set('layers', 'nLayers');
  set('heads', 'nHeads');
  set('kv-heads', 'nKvHeads');
  set('vocab', 'vocabSize');
  set('multiple-of', 'multipleOf');
  if (values.seq !== undefined) overrides.maxSeqLen = int(values.seq, 'seq', 1, 1);
  const configPath = str(values.config);
  const presetName = str(values.preset);
  if (configPath && presetName) throw new UserError('give either --preset or --config, not both');
  if (configPath) return makeConfig(configFromJson(readJsonFile(configPath, 'config file'), configPath), overrides);
  if (presetName) return makeConfig(presetName, overrides);
  if (fallbackPreset) return makeConfig(fallbackPreset, overrides);
  if (overrides.dim === undefined) throw new UserError('no model given: use --preset NAME, --config FILE or at least --dim');
  return makeConfig({}, overrides);
}

export { num, int, str };

/** `--force`: run even when the memory estimate says the machine cannot hold it. */
export const forceOption: Options = { force: { type: 'boolean' } };

/**
 * The one-line refusal of a run the machine cannot hold (null when it fits, or with --force): how much `what` needs
 * (by part; times the ranks sharing this host under mpirun), how much there is, and `hint`: what would make it fit.
 */
export function memoryRefusal(what: string, need: MemoryNeed, hint: string, values: Values, ranksHere = 1): string | null {
  if (values.force) return null;
  const avail = availableMemory();
  const total = need.total * ranksHere;
  if (total <= avail.bytes) return null;
  const each = ranksHere > 1 ? ` per rank × ${ranksHere} ranks on this host` : '';
  return `${what} needs ~${gib(total)} (${describeNeed(need)}${each}) but ${gib(avail.bytes)} is available (${avail.source}): ${hint}, or pass --force to try anyway`;
}

/** Throws the refusal when there is one. */
export function checkMemory(what: string, need: MemoryNeed, hint: string, values: Values): void {
  const r = memoryRefusal(what, need, hint, values);
  if (r) throw new UserError(r);
}

/** Ranks of this run on this host (mpirun sets OMPI_COMM_WORLD_LOCAL_SIZE), 1 in one process. */
export function ranksOnThisHost(world: number): number {
  const n = Number(process.env.OMPI_COMM_WORLD_LOCAL_SIZE ?? process.env.MPI_LOCALNRANKS ?? 1);
  return Number.isInteger(n) && n >= 1 ? Math.min(n, world) : 1;
}
