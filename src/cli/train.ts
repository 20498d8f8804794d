import type { Command } from './main.js';
import { parse, int, str, type Options, type Values } from './args.js';
import { configOptions, loadConfigArg, forceOption, memoryRefusal, ranksOnThisHost } from './common.js';
import { trainingMemory, gib, RUNTIME_BYTES } from '../model/memory.js';
import { availableMemory } from '../util/memory.js';
import { anyRank } from '../training/distributed.js';
import { createBackend, BACKEND_NAMES } from '../kernels/index.js';
import { train, type TrainResult, type TaskEvaluator } from '../training/trainer.js';
import { loadTask, resolveTaskPaths, runTask } from '../eval/index.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { SETTINGS, TRAIN_SETTINGS, HYPER_DEFAULTS, resolveHyper, recipeHyper, checkHyper, hyperFromSaved, dtypeOf, type Hyper, type SettingGroup } from '../training/settings.js';
import { checkTrainingFits } from '../training/limits.js';
import { getRecipe } from '../model/recipe.js';
import { openTrainingData } from '../data/loader.js';
import { loadTokenizer } from '../data/tokenizer.js';
import { describeConfig, paramCount, makeConfig, presetNames, type LlamaConfig } from '../model/config.js';
import { UserError } from '../util/errors.js';
import { createComm } from '../parallel/mpi.js';
import { RECOMPUTE_POLICIES, type DTypeName, type Recompute } from '../model/llama.js';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { readCheckpointState, type FinetuneRecord, type TokenizerRef } from '../io/checkpoint.js';
import { loadAnyModel, tokenizerForRun } from '../io/formats.js';
import { openSftData, resolveSftTemplate, SFT_TEMPLATES, DEFAULT_SFT_TEMPLATE } from '../data/sft.js';
import { parseLoraTargets, DEFAULT_LORA_TARGETS } from '../model/lora.js';
import { PROJECTIONS, type Llama } from '../model/llama.js';
import { tokenizerFromRef } from '../tokenizer/ref.js';
import { Decoder, generate } from '../inference/generate.js';
import { serveDashboard, portArg } from './dashboard.js';
import { DEFAULT_PORT } from '../dashboard/server.js';

/** A command-line flag that is not a training setting (where the data is, where the run goes, how it runs). */
interface RunFlag {
  flag: string;
  type: 'string' | 'boolean';
  group: HelpGroup;
  arg?: string;
  doc: string;
}

type HelpGroup = 'data' | 'output' | 'parallel' | SettingGroup;
const HELP_GROUPS: readonly HelpGroup[] = ['data', 'output', 'schedule', 'optim', 'finetune', 'eval', 'ckpt', 'parallel', 'misc'];

const RUN_FLAGS: readonly RunFlag[] = [
  { flag: 'data', type: 'string', group: 'data', arg: 'PATH', doc: "prepared dir ('llama-ts data prepare'), text file (blank-line separated documents), directory of .txt, or 'brown' (default)" },
  { flag: 'tokenizer', type: 'string', group: 'data', arg: 'T.model', doc: 'SentencePiece model (default: bytes); must match the one a prepared dir was made with' },
  { flag: 'init-from', type: 'string', group: 'finetune', arg: 'MODEL', doc: 'fine-tune: start from this model (checkpoint or run dir, Hugging Face dir, .gguf, llama2.c .bin) with its config and tokenizer; the schedule starts fresh' },
  { flag: 'sft', type: 'string', group: 'finetune', arg: 'FILE.jsonl', doc: 'instruction data instead of --data: one {"prompt": …, "response": …} per line; the loss covers the response only' },
  { flag: 'sft-template', type: 'string', group: 'finetune', arg: 'T', doc: `how --sft examples are laid out: ${Object.keys(SFT_TEMPLATES).join(', ')} (default ${DEFAULT_SFT_TEMPLATE}: 'Question: {prompt}\\nAnswer: {response}'), or a text with {prompt} and {response}` },
  { flag: 'lora-targets', type: 'string', group: 'finetune', arg: 'LIST', doc: `projections --lora adapts: ${PROJECTIONS.join(',')} or all (default ${DEFAULT_LORA_TARGETS.join(',')})` },
  { flag: 'eval-task', type: 'string', group: 'eval', arg: 'FILE', doc: "also run this evaluation task (a task file, a directory of them or a bundled task's name: docs/EVAL.md) at each evaluation and log its metrics to train.jsonl" },
  { flag: 'eval-limit', type: 'string', group: 'eval', arg: 'N', doc: "with --eval-task: only each task's first N documents (default all)" },
  { flag: 'out', type: 'string', group: 'output', arg: 'DIR', doc: 'run directory: train.jsonl log and checkpoints/ (default runs/<preset>)' },
  { flag: 'sample-every', type: 'string', group: 'eval', arg: 'N', doc: 'generate a text sample every N steps and at the end, logged to train.jsonl (and shown by the dashboard); 0: none (default)' },
  { flag: 'sample-prompt', type: 'string', group: 'eval', arg: 'TEXT', doc: "the samples' prompt (default: empty, a new document)" },
  { flag: 'dashboard', type: 'string', group: 'output', arg: '[=PORT]', doc: `serve the live dashboard of this run while it trains (default port ${DEFAULT_PORT}; see 'llama-ts dashboard')` },
  { flag: 'dashboard-host', type: 'string', group: 'output', arg: 'HOST', doc: 'address the dashboard listens on (default 127.0.0.1; another exposes the logs to the network, with a warning)' },
  { flag: 'stop-at', type: 'string', group: 'ckpt', arg: 'N', doc: 'stop early (with a checkpoint) after N steps, keeping the schedule of --steps' },
  { flag: 'resume', type: 'boolean', group: 'ckpt', doc: 'continue the run in --out with its saved settings (only --steps may change)' },
  { flag: 'tp', type: 'string', group: 'parallel', arg: 'T', doc: 'tensor-parallel ranks per model (Megatron-LM split of heads and SwiGLU units); under mpirun -np N the other N/T are data parallel (default 1; see docs/DISTRIBUTED.md)' },
  { flag: 'sp', type: 'boolean', group: 'parallel', doc: 'sequence parallelism with --tp: the norms and residual stream divided along the rows too (Korthikanti et al. 2022)' },
  { flag: 'zero', type: 'string', group: 'parallel', arg: '0|1', doc: 'ZeRO stage 1: divide the AdamW moments across the data-parallel ranks (reduce-scatter, update a slice, all-gather; default 0)' },
  { flag: 'recompute', type: 'string', group: 'misc', arg: 'POLICY', doc: `activation checkpointing: ${RECOMPUTE_POLICIES.join(', ')} (default none; the same gradients, less memory: selective recomputes the norms and the SwiGLU gate, full each block)` },
  { flag: 'backend', type: 'string', group: 'misc', arg: 'NAME', doc: `kernels: ${BACKEND_NAMES.join(', ')} (default: native when its addon is built, else wasm with a notice; ref-f64 is the float64 oracle)` },
  { flag: 'quiet', type: 'boolean', group: 'misc', doc: 'no progress bar or summary lines on stderr' },
  { flag: 'force', type: 'boolean', group: 'misc', doc: "start even when the memory estimate (weights, gradients, AdamW, activations) exceeds the available memory ($LLAMA_TS_MEMORY_LIMIT, else MemAvailable)" },
];

/** Every flag of `llama-ts train`: the model flags, the run flags and one per training setting. */
export const trainOptions: Options = {
  ...configOptions,
  ...Object.fromEntries(RUN_FLAGS.map((f) => [f.flag, { type: f.type }])),
  ...Object.fromEntries(SETTINGS.map((s) => [s.flag, { type: 'string' }])),
};

function helpText(): string {
  const rows: { group: HelpGroup; left: string; doc: string }[] = [
    ...SETTINGS.map((s) => ({ group: s.group, left: `--${s.flag} ${s.arg}`, doc: `${s.doc} (default ${s.defaultDoc ?? s.default})` })),
    ...RUN_FLAGS.map((f) => ({ group: f.group, left: `--${f.flag}${f.arg ? `${f.arg.startsWith('[') ? '' : ' '}${f.arg}` : ''}`, doc: f.doc })),
  ];
  const width = Math.max(...rows.map((r) => r.left.length)) + 2;
  const lines = [
    'usage: llama-ts train (--preset NAME | --config FILE | --init-from MODEL) [options]',
    '',
    'model:',
    `  ${'--preset NAME'.padEnd(width)}a built-in model: ${presetNames().join(', ')}`,
    `  ${'--config FILE'.padEnd(width)}a model config JSON file`,
    `  ${''.padEnd(width)}overrides: --dim --layers --heads --kv-heads --vocab --seq --multiple-of`,
  ];
  for (const g of HELP_GROUPS) {
    lines.push(`${g}:`);
    for (const r of rows.filter((x) => x.group === g)) lines.push(`  ${r.left.padEnd(width)}${r.doc}`);
  }
  return lines.join('\n');
}

/** The training settings from parsed flags; the ones not given come from `base`, fitted to the model and to `dp` data-parallel ranks. */
export function hyperFromValues(values: Values, config: LlamaConfig, base: Hyper = HYPER_DEFAULTS, dp = 1): Hyper {
  const given: Partial<Hyper> = {};
  for (const s of SETTINGS) {
    const v = values[s.flag];
    if (v !== undefined) given[s.key] = s.parse(typeof v === 'string' || typeof v === 'boolean' ? v : String(v), s.flag);
  }
  return resolveHyper(given, config, base, dp);
}

/** The defaults of a run: the caller's, else the --preset's recipe (model/recipe.ts), else the table's. */
export function baseHyper(values: Values, defaults: { preset?: string; hyper?: Hyper } = {}): Hyper {
  if (defaults.hyper) return defaults.hyper;
  const recipe = getRecipe(str(values.preset) ?? defaults.preset ?? '');
  return recipe ? recipeHyper(recipe) : HYPER_DEFAULTS;
}

/** --dtype (outside `train`, whose settings table parses it): f32 (default) or bf16, or one line listing them. */
export function dtypeArg(v: Values[string]): DTypeName {
  return v === undefined ? 'f32' : dtypeOf({ dtype: TRAIN_SETTINGS.dtype.parse(String(v), 'dtype') });
}

/** --recompute: one of the policies, or one line listing them. */
export function recomputeArg(v: Values[string]): Recompute {
  const r = str(v) ?? 'none';
  if (!(RECOMPUTE_POLICIES as readonly string[]).includes(r)) throw new UserError(`--recompute must be one of ${RECOMPUTE_POLICIES.join(', ')}, got '${r}'`);
  return r as Recompute;
}

/**
 * The settings of a resumed run: the checkpoint's (state.json `hyper`, checked as the flags would be, with the file
 * named), with --steps from the command line. Any other setting flag must repeat the saved value: a different one is
 * refused, since the run would silently continue with the saved one.
 */
function resumedHyper(values: Values, config: LlamaConfig, savedJson: unknown, file: string): Hyper {
  if (typeof savedJson !== 'object' || savedJson === null || Array.isArray(savedJson)) throw new UserError(`'${file}': 'hyper' must be an object`);
  const saved = hyperFromSaved(savedJson as Record<string, unknown>);
  try {
    checkHyper(saved, config);
    checkTrainingFits(config, { batch: saved.batch, seq: saved.seq });
  } catch (e) {
    if (e instanceof UserError) throw new UserError(`'${file}': the saved settings are not usable: ${e.message.replace(/--([a-z-]+)/, (_, f: string) => `hyper.${SETTINGS.find((s) => s.flag === f)?.key ?? f}`)}`);
    throw e;
  }
  for (const s of SETTINGS) {
    const v = values[s.flag];
    if (s.key === 'steps' || v === undefined) continue;
    const given = s.parse(typeof v === 'string' || typeof v === 'boolean' ? v : String(v), s.flag);
    if (given !== saved[s.key]) {
      throw new UserError(`--${s.flag} ${given} differs from the checkpoint's ${saved[s.key]}: a resumed run keeps its saved settings (only --steps may change); drop the flag or start a new run with another --out`);
    }
  }
  const steps = values.steps !== undefined ? TRAIN_SETTINGS.steps.parse(String(values.steps), 'steps') : saved.steps;
  return resolveHyper({ ...saved, steps }, config);
}

/** `--dashboard` alone (no =PORT) as parseArgs can read it: an empty value, the default port. */
export function dashboardFlag(argv: string[]): string[] {
  return argv.map((a) => (a === '--dashboard' ? '--dashboard=' : a));
}

/** --sample-every / --sample-prompt: the trainer's sampler (inference/generate.ts over the model being trained). */
function samplesOption(values: Values, tok: Tokenizer, config: LlamaConfig, seed: number, tp: number) {
  const every = int(values['sample-every'], 'sample-every', 0, 0);
  const prompt = str(values['sample-prompt']) ?? '';
  if (every === 0) {
    if (values['sample-prompt'] !== undefined) throw new UserError('--sample-prompt needs --sample-every N');
    return undefined;
  }
  if (tp > 1) throw new UserError('--sample-every works with whole models only: drop it or --tp');
  const ids = [tok.bosId, ...tok.encode(prompt)];
  if (ids.length >= config.maxSeqLen) throw new UserError(`--sample-prompt is ${ids.length} tokens, the model's context is ${config.maxSeqLen}`);
  const maxTokens = Math.min(96, config.maxSeqLen - ids.length);
  return {
    every,
    async generate(model: Llama) {
      const [r] = await generate(new Decoder(model), [ids], { maxTokens, temperature: 0.8, topK: 0, topP: 0.95, seed, tokenizer: tok, stopTokens: [tok.eosId], onContextFull: 'stop' });
      return { prompt, sample: r.text };
    },
  };
}

/** Shared by `train` and `demo`: builds everything from parsed flags and runs the loop. */
export async function runTraining(values: Values, defaults: { preset?: string; out?: string; hyper?: Hyper } = {}): Promise<TrainResult> {
  const outDir = str(values.out) ?? defaults.out ?? join('runs', str(values.preset) ?? defaults.preset ?? 'model');
  let config: LlamaConfig;
  const modelFlags = Object.keys(configOptions).filter((k) => k !== 'seq' && values[k] !== undefined);
  if (!values.resume && existsSync(join(outDir, 'checkpoints', 'latest'))) {
    throw new UserError(`'${outDir}' already holds a run: pass --resume to continue it or choose another --out`);
  }
  let tok: Tokenizer | undefined;
  const evalTasks = evalTaskArg(values, () => tok as Tokenizer); // task files checked before anything is loaded
  const ck = values.resume ? readCheckpointState(outDir) : null;
  const ft = finetuneArgs(values, ck?.state.finetune, Boolean(ck?.state.lora));
  let tokPath = str(values.tokenizer);
  let tokRef: TokenizerRef | undefined;
  let initFrom: Llama | undefined;
  if (ft.initFromPath && (!ck || ck.state.lora)) {
    // a fresh fine-tuning run, or a LoRA run's frozen base: the model, its config and (fresh) its tokenizer
    if (modelFlags.length && !ck) throw new UserError(`--init-from takes the model's own config: drop --${modelFlags[0]}`);
    const loaded = initFromModel(str(values['init-from']) ?? ft.initFromPath);
    initFrom = loaded.model;
    config = loaded.model.config;
    if (ck) {
      tok = tokPath ? await loadTokenizer(tokPath) : tokenizerFromRef(ck.state.tokenizer, ck.dir);
      tokRef = ck.state.tokenizer;
      if (!tokPath && tokRef.kind !== 'bytes') tokPath = keepTokenizerFile(ck.dir, tokRef.file, outDir);
    } else if (tokPath) {
      tok = await loadTokenizer(tokPath);
      if (tok.vocabSize > config.vocabSize) throw new UserError(`--tokenizer '${tokPath}' has ${tok.vocabSize} ids, more than the model's ${config.vocabSize}`);
    } else {
      const t = tokenizerForRun(ft.initFromPath, loaded, outDir);
      tok = t.tokenizer;
      tokRef = t.ref;
      tokPath = t.file;
    }
  } else if (ck && modelFlags.length === 0) {
    config = ck.state.config;
    // a fine-tuning run resumes with the tokenizer it saved (a plain run: the --tokenizer given again)
    if (ck.state.finetune && !tokPath && ck.state.tokenizer.kind !== 'bytes') {
      tokRef = ck.state.tokenizer;
      tokPath = keepTokenizerFile(ck.dir, ck.state.tokenizer.file, outDir);
      tok = tokenizerFromRef(ck.state.tokenizer, ck.dir);
    } else {
      tok = await loadTokenizer(tokPath);
    }
  } else {
    tok = await loadTokenizer(tokPath);
    config = loadConfigArg(values, defaults.preset);
    if (values.vocab === undefined && config.vocabSize !== tok.vocabSize) config = makeConfig(config, { vocabSize: tok.vocabSize });
  }
  if (config.vocabSize < tok.vocabSize) throw new UserError(`--vocab ${config.vocabSize} is smaller than the tokenizer's ${tok.vocabSize} ids`);
  const comm = createComm(); // MpiComm under mpirun, else one process
  const tp = int(values.tp, 'tp', 1, 1);
  const dp = comm.world % tp === 0 ? comm.world / tp : 1; // a --tp that does not divide the world is refused by the trainer
  // a resumed run keeps the checkpoint's settings (its seed and seq also choose the held-out windows): only --steps may change
  const hyper = ck ? resumedHyper(values, config, ck.state.hyper, join(ck.dir, 'state.json')) : hyperFromValues(values, config, baseHyper(values, defaults), dp);
  const zero = int(values.zero, 'zero', 0, 0);
  if (zero > 1) throw new UserError(`--zero must be 0 or 1 (stage 1: sharded optimizer state), got ${zero}`);
  const recompute = recomputeArg(values.recompute);
  if (values.sp && tp === 1) throw new UserError('--sp divides rows among the tensor-parallel ranks: give --tp 2 or more');
  const backend = createBackend(str(values.backend));
  // before the data is read and anything allocated: a run that cannot fit in memory stops with one line (--force: try)
  checkTrainingMemory(values, config, hyper, { tp, dp, zero, recompute, world: comm.world, bytesPerFloat: backend.alloc(0).BYTES_PER_ELEMENT, preset: str(values.preset) ?? defaults.preset }, comm);
  checkTrainingFits(config, { batch: hyper.batch, seq: hyper.seq, tp, floatBytes: backend.dtype === 'f64' ? 8 : 4 }, Infinity); // buffers V8 cannot make, --force or not
  if (hyper.loraRank === 0 && values['lora-targets'] !== undefined) throw new UserError('--lora-targets needs --lora R');
  if (hyper.loraRank > 0 && !initFrom) throw new UserError('--lora trains an adapter over a model: give the model with --init-from MODEL');
  if (hyper.loraRank > 0 && (comm.world > 1 || tp > 1 || zero > 0)) throw new UserError('LoRA training runs in one process for now (no mpirun, --tp or --zero)');
  const sft = ft.sft ? openSftData(ft.sftPath ?? ft.sft.file, tok, hyper.seed, hyper.seq, ft.sft.template) : null;
  const data = sft ?? openTrainingData(str(values.data) ?? 'brown', tok, hyper.seed, hyper.seq);
  if (!values.quiet && comm.rank === 0) {
    if (comm.world > 1) console.error(`ranks: ${comm.world} = ${tp} tensor-parallel × ${comm.world / tp} data-parallel`);
    console.error(`model: ${describeConfig(config)} (${paramCount(config).toLocaleString('en-US')} parameters), backend ${backend.name}`);
    console.error(`data: ${data.trainTokens.toLocaleString('en-US')} training / ${data.heldOutTokens.toLocaleString('en-US')} held-out tokens; run dir ${outDir}`);
    if (sft) console.error(`sft: ${sft.trainExamples} training / ${sft.heldOutExamples} held-out examples${sft.truncated ? `, ${sft.truncated} cut at --seq ${hyper.seq}` : ''}`);
    if (initFrom) console.error(`init from: ${ft.initFromPath}${hyper.loraRank > 0 ? ` (frozen; LoRA rank ${hyper.loraRank}, alpha ${hyper.loraAlpha}, targets ${ft.loraTargets.join(',')})` : ''}`);
  }
  const record: FinetuneRecord | undefined = ft.initFromPath || ft.sft ? { ...(ft.initFromPath ? { initFrom: ft.initFromPath } : {}), ...(ft.sft ? { sft: ft.sft } : {}) } : undefined;
  const samples = samplesOption(values, tok, config, hyper.seed, tp);
  let dashboard = null;
  if (values.dashboard !== undefined && comm.rank === 0) {
    mkdirSync(outDir, { recursive: true }); // so that the page shows a run waiting for its first line, not a missing one
    dashboard = await serveDashboard([outDir], { port: portArg(values.dashboard, 'dashboard') ?? DEFAULT_PORT, host: str(values['dashboard-host']), thread: true });
  }
  try {
    return await train({
      config, backend, hyper, runDir: outDir, train: data.train, heldOut: data.heldOut, evalTasks,
      tokenizer: tokRef ?? (tokPath ? { kind: 'sentencepiece', file: basename(tokPath) } : { kind: 'bytes' }), tokenizerFile: tokPath,
      initFrom, loraTargets: ft.loraTargets, finetune: record, resume: Boolean(values.resume), extendSteps: values.steps !== undefined ? hyper.steps : undefined,
      stopAt: int(values['stop-at'], 'stop-at', undefined, 1), quiet: Boolean(values.quiet), comm, tp, sp: Boolean(values.sp), zero: zero as 0 | 1, recompute, samples,
    });
  } finally {
    if (dashboard) {
      await dashboard.close();
      console.error(`dashboard closed; look at the run again with: llama-ts dashboard ${outDir}`);
    }
  }
}

/** The --init-from model; what is wrong with the path, in one line naming the flag. */
function initFromModel(path: string) {
  try {
    return loadAnyModel(path, createBackend('ref'), undefined, undefined, { dequantize: true }); // float32 weights to train from
  } catch (e) {
    if (e instanceof UserError) throw new UserError(`--init-from: ${e.message}`);
    throw e;
  }
}

/** A copy of a checkpoint's tokenizer file in the run directory (the checkpoint itself may be pruned), for the next saves. */
function keepTokenizerFile(ckDir: string, file: string, runDir: string): string {
  const to = join(runDir, file);
  copyFileSync(join(ckDir, file), to);
  return to;
}

/**
 * The fine-tuning flags: --init-from (absolute), --sft with its template, --lora-targets. A resumed run takes the
 * ones its checkpoint recorded unless they are given again.
 */
function finetuneArgs(values: Values, saved: FinetuneRecord | undefined, loraRun: boolean) {
  const init = str(values['init-from']);
  const sftFile = str(values.sft);
  if (sftFile !== undefined && values.data !== undefined) throw new UserError('give --sft FILE.jsonl or --data PATH, not both');
  const template = str(values['sft-template']);
  if (template !== undefined && sftFile === undefined && !saved?.sft) throw new UserError('--sft-template needs --sft FILE.jsonl');
  if (template !== undefined) resolveSftTemplate(template);
  const sft = sftFile !== undefined ? { file: resolve(sftFile), template: template ?? DEFAULT_SFT_TEMPLATE } : saved?.sft;
  const initFromPath = init !== undefined ? resolve(init) : loraRun ? saved?.initFrom : undefined;
  if (init !== undefined && !existsSync(init)) throw new UserError(`--init-from '${init}' does not exist`);
  const targets = str(values['lora-targets']);
  return { initFromPath, sft, sftPath: sftFile, loraTargets: targets !== undefined ? parseLoraTargets(targets) : [...DEFAULT_LORA_TARGETS] };
}

/** --eval-task: every task file read and checked up front (one line naming file and line when one is wrong). */
function evalTaskArg(values: Values, tok: () => Tokenizer): TaskEvaluator[] {
  const arg = str(values['eval-task']);
  const limit = int(values['eval-limit'], 'eval-limit', undefined, 1);
  if (arg === undefined) {
    if (limit !== undefined) throw new UserError('--eval-limit applies to --eval-task: give the task too');
    return [];
  }
  return resolveTaskPaths(arg).map((f) => {
    const task = loadTask(f);
    return { name: task.spec.name, run: async (model) => runTask(model, tok(), task, { limit }) };
  });
}

/** Stops (every rank, with one line) before anything is allocated when this host cannot hold the run; --force skips it. */
function checkTrainingMemory(
  values: Values, config: LlamaConfig, h: Hyper, o: { tp: number; dp: number; zero: number; recompute: Recompute; world: number; bytesPerFloat: number; preset?: string }, comm: ReturnType<typeof createComm>,
): void {
  const need = trainingMemory(config, { batch: h.batch, seq: h.seq, tp: o.tp, sp: Boolean(values.sp), dp: o.dp, zero: o.zero as 0 | 1, recompute: o.recompute, dtype: dtypeOf(h), bytesPerFloat: o.bytesPerFloat });
  const model = o.preset ? `--preset ${o.preset}` : '--config FILE';
  const state = need.parts.filter((p) => p.name !== 'activations' && p.name !== 'runtime').reduce((a, p) => a + p.bytes, 0);
  const smaller = h.batch > 1 || h.seq > 128 ? `a smaller --batch (now ${h.batch}; --accum keeps the global batch) or --seq (now ${h.seq}), ` : '';
  const hint =
    `${state + RUNTIME_BYTES > availableMemory().bytes ? `the weights, gradients and AdamW alone need ${gib(state)}: ` : `use ${smaller}`}` +
    `--recompute full, split the model with --tp T over more ranks under mpirun (--zero 1 shares AdamW), or size a layout with 'llama-ts plan cluster ${model} --gpus N --search'`;
  const refusal = memoryRefusal(`training this model (${paramCount(config).toLocaleString('en-US')} parameters, batch ${h.batch} × seq ${h.seq}${o.tp > 1 ? `, tp ${o.tp}` : ''})`, need, hint, values, ranksOnThisHost(o.world));
  if (anyRank(comm, refusal !== null)) throw new UserError(refusal ?? 'another rank of this run has not enough memory for it (see its message)');
}

export const command: Command = {
  async run(argv) {
    const { values } = parse(dashboardFlag(argv), trainOptions);
    if (values.help) {
      console.log(helpText());
      return 0;
    }
    const r = await runTraining(values);
    // Ctrl-C: the finished step is checkpointed; exit 130 (128 + SIGINT) so scripts can tell it from the end of the run
    const code = r.outcome === 'interrupted' ? 130 : 0;
    if (r.rank !== 0) return code;
    if (r.outcome === 'interrupted') {
      console.error(`interrupted at step ${r.steps}; checkpoint ${r.checkpoint ?? '(none)'}; continue with --resume`);
      return code;
    }
    const ev = r.lastEvalLoss !== null ? `, held-out loss ${r.firstEvalLoss?.toFixed(4)} → ${r.lastEvalLoss.toFixed(4)}` : '';
    console.error(`trained ${r.steps} steps${ev}; checkpoint ${r.checkpoint ?? '(none)'}`);
    return 0;
  },
};
