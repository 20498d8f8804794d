/** `llama-ts bench train|generate`: training or generation throughput as one JSON line. */
import type { Command } from './main.js';
import { parse, int, num, str } from './args.js';
import { loadConfigArg, configOptions } from './common.js';
import { benchTrain } from '../bench/train.js';
import { benchGenerate } from './bench-generate.js';
import { createBackend, BACKEND_NAMES, type BackendName } from '../kernels/index.js';
import { UserError } from '../util/errors.js';

const USAGE = `usage: llama-ts bench train (--preset NAME | --config FILE) [--batch B] [--seq T] [--backend ${BACKEND_NAMES.join('|')}]
                       [--steps N] [--threads N] [--peak GFLOPS] [--vocab V ...]
Times N training steps (after one warm-up step) on random tokens and prints one JSON line with tokens_per_s, mfu,
step_ms and the time of each phase. The MFU peak is the native SGEMM measured now unless --peak is given.`;

export const command: Command = {
  summary: 'measure training (bench train) or generation (bench generate) throughput as one JSON line',
  async run(argv) {
    if (argv[0] === 'generate') return benchGenerate(argv.slice(1));
    const { values, positionals } = parse(argv, {
      ...configOptions, batch: { type: 'string' }, backend: { type: 'string' }, steps: { type: 'string' },
      threads: { type: 'string' }, peak: { type: 'string' },
    }, true);
    if (values.help) {
      console.log(USAGE);
      return 0;
    }
    const [what, ...extra] = positionals;
    if (what !== 'train') throw new UserError(what ? `unknown benchmark '${what}' (known: train, generate)` : `missing benchmark name: ${USAGE.split('\n')[0]}`);
    if (extra.length) throw new UserError(`unexpected argument '${extra[0]}'`);
    const config = loadConfigArg(values);
    const seq = int(values.seq, 'seq', Math.min(256, config.maxSeqLen), 1);
    const batch = int(values.batch, 'batch', 8, 1);
    const steps = int(values.steps, 'steps', 3, 1);
    const backendName = str(values.backend);
    if (backendName !== undefined && !(BACKEND_NAMES as readonly string[]).includes(backendName)) {
      throw new UserError(`unknown backend '${backendName}' (known: ${BACKEND_NAMES.join(', ')})`);
    }
    const backend = createBackend(backendName as BackendName | undefined);
    const threads = int(values.threads, 'threads', undefined, 1);
    if (threads !== undefined) {
      const nb = backend as { setThreads?: (n: number) => number };
      if (!nb.setThreads) throw new UserError(`--threads needs the native backend (got ${backend.name})`);
      nb.setThreads(threads);
    }
    const peak = num(values.peak, 'peak');
    if (peak !== undefined && !(peak > 0)) throw new UserError(`--peak expects a positive number of GFLOP/s, got '${String(values.peak)}'`);
    const preset = str(values.preset) ?? null;
    const r = benchTrain({ config, batch, seq, backend, steps, peakGflops: peak });
    console.log(JSON.stringify({ bench: 'train', preset, vocab: config.vocabSize, ...r }));
    return 0;
  },
};
