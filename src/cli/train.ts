import type { Command } from './main.js';
import { parse, int, num, str, type Values } from './args.js';
import { configOptions, loadConfigArg } from './common.js';
import { createBackend } from '../kernels/index.js';
import { train, HYPER_DEFAULTS, type Hyper, type TrainResult } from '../training/trainer.js';
import { openCheckpoint } from '../io/checkpoint.js';
import { openTrainingData } from '../data/loader.js';
import { loadTokenizer } from '../data/tokenizer.js';
import { describeConfig, paramCount, makeConfig, type LlamaConfig } from '../model/config.js';
import { UserError } from '../util/errors.js';
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';

export const trainOptions = {
  ...configOptions,
  data: { type: 'string' },
  tokenizer: { type: 'string' },
  out: { type: 'string' },
  steps: { type: 'string' },
  batch: { type: 'string' },
  accum: { type: 'string' },
  lr: { type: 'string' },
  warmup: { type: 'string' },
  'min-lr-ratio': { type: 'string' },
  clip: { type: 'string' },
  beta1: { type: 'string' },
  beta2: { type: 'string' },
  eps: { type: 'string' },
  'weight-decay': { type: 'string' },
  seed: { type: 'string' },
  'eval-every': { type: 'string' },
  'eval-batches': { type: 'string' },
  'ckpt-every': { type: 'string' },
  'stop-at': { type: 'string' },
  backend: { type: 'string' },
  resume: { type: 'boolean' },
  quiet: { type: 'boolean' },
} as const;

const HELP = `usage: llama-ts train (--preset NAME | --config FILE) [options]

model:    --preset NAME | --config FILE, overrides --dim --layers --heads --kv-heads --vocab --seq --multiple-of
data:     --data PATH        prepared dir ('llama-ts data prepare'), text file (blank-line separated documents), directory of .txt, or 'brown' (default)
          --tokenizer T.model SentencePiece model (default: bytes); must match the one a prepared dir was made with
output:   --out DIR          run directory: train.jsonl log and checkpoints/ (default runs/<preset>)
schedule: --steps N (${HYPER_DEFAULTS.steps}) --batch B (${HYPER_DEFAULTS.batch}) --seq T (model max, at most 256) --accum K (1)
          --lr PEAK (${HYPER_DEFAULTS.lr}) --warmup N (${HYPER_DEFAULTS.warmup}) --min-lr-ratio R (${HYPER_DEFAULTS.minLrRatio})
optim:    --clip NORM (1.0) --beta1 (0.9) --beta2 (0.95) --eps (1e-8) --weight-decay (0.1)
eval:     --eval-every N (${HYPER_DEFAULTS.evalEvery}) --eval-batches N (${HYPER_DEFAULTS.evalBatches})
ckpt:     --ckpt-every N (${HYPER_DEFAULTS.ckptEvery}) --stop-at N (stop early, keep the schedule)
          --resume: continue the run in --out with its saved hyper-parameters (only --steps may change)
misc:     --seed S --backend ref|ref-f64 --quiet`;

export function hyperFromValues(values: Values, config: LlamaConfig, base: Hyper = HYPER_DEFAULTS): Hyper {
  return {
    steps: int(values.steps, 'steps', base.steps, 1),
    batch: int(values.batch, 'batch', base.batch, 1),
    seq: int(values.seq, 'seq', Math.min(config.maxSeqLen, base.seq), 1),
    accum: int(values.accum, 'accum', base.accum, 1),
    lr: num(values.lr, 'lr', base.lr),
    warmup: int(values.warmup, 'warmup', Math.min(base.warmup, int(values.steps, 'steps', base.steps, 1)), 0),
    minLrRatio: num(values['min-lr-ratio'], 'min-lr-ratio', base.minLrRatio),
    clip: num(values.clip, 'clip', base.clip),
    beta1: num(values.beta1, 'beta1', base.beta1),
    beta2: num(values.beta2, 'beta2', base.beta2),
    eps: num(values.eps, 'eps', base.eps),
    weightDecay: num(values['weight-decay'], 'weight-decay', base.weightDecay),
    seed: int(values.seed, 'seed', base.seed, 0),
    evalEvery: int(values['eval-every'], 'eval-every', base.evalEvery, 0),
    evalBatches: int(values['eval-batches'], 'eval-batches', base.evalBatches, 0),
    ckptEvery: int(values['ckpt-every'], 'ckpt-every', base.ckptEvery, 0),
  };
}

/** Shared by `train` and `demo`: builds everything from parsed flags and runs the loop. */
export async function runTraining(values: Values, defaults: { preset?: string; out?: string; hyper?: Hyper } = {}): Promise<TrainResult> {
  const tokPath = str(values.tokenizer);
  const tok = await loadTokenizer(tokPath);
  const outDir = str(values.out) ?? defaults.out ?? join('runs', str(values.preset) ?? defaults.preset ?? 'model');
  let config: LlamaConfig;
  const modelFlags = Object.keys(configOptions).filter((k) => k !== 'seq' && values[k] !== undefined);
  if (values.resume && modelFlags.length === 0) {
    config = openCheckpoint(outDir).state.config;
  } else {
    config = loadConfigArg(values, defaults.preset);
    if (values.vocab === undefined && config.vocabSize !== tok.vocabSize) config = makeConfig(config, { vocabSize: tok.vocabSize });
  }
  if (config.vocabSize < tok.vocabSize) throw new UserError(`--vocab ${config.vocabSize} is smaller than the tokenizer's ${tok.vocabSize} ids`);
  if (!values.resume && existsSync(join(outDir, 'checkpoints', 'latest'))) {
    throw new UserError(`'${outDir}' already holds a run: pass --resume to continue it or choose another --out`);
  }
  const hyper = hyperFromValues(values, config, defaults.hyper);
  const backend = createBackend(str(values.backend));
  const data = openTrainingData(str(values.data) ?? 'brown', tok, hyper.seed, hyper.seq);
  if (!values.quiet) {
    console.error(`model: ${describeConfig(config)} (${paramCount(config).toLocaleString('en-US')} parameters), backend ${backend.name}`);
    console.error(`data: ${data.trainTokens.toLocaleString('en-US')} training / ${data.heldOutTokens.toLocaleString('en-US')} held-out tokens; run dir ${outDir}`);
  }
  return train({
    config, backend, hyper, runDir: outDir, train: data.train, heldOut: data.heldOut,
    tokenizer: tokPath ? { kind: 'sentencepiece', file: basename(tokPath) } : { kind: 'bytes' }, tokenizerFile: tokPath, resume: Boolean(values.resume), extendSteps: values.steps !== undefined ? hyper.steps : undefined,
    stopAt: int(values['stop-at'], 'stop-at', undefined, 1), quiet: Boolean(values.quiet),
  });
}

export const command: Command = {
  summary: 'train a model (preset or config file) on text data, with checkpoints and --resume',
  async run(argv) {
    const { values } = parse(argv, trainOptions);
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    const r = await runTraining(values);
    const ev = r.lastEvalLoss !== null ? `, held-out loss ${r.firstEvalLoss?.toFixed(4)} → ${r.lastEvalLoss.toFixed(4)}` : '';
    console.error(`trained ${r.steps} steps${ev}; checkpoint ${r.checkpoint ?? '(none)'}`);
    return 0;
  },
};
