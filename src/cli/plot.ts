import type { Command } from './main.js';
import { parse, str } from './args.js';
import { readRuns, writePlot } from '../dashboard/plot.js';
import { UserError } from '../util/errors.js';

const USAGE = `usage: llama-ts plot RUN_DIR... --out curves.svg|curves.png [--x step|tokens] [--log-y] [--smoothing W (0.9)]
The dashboard's charts of the runs (overlaid) as a file: .svg is written directly, .png through the system Chromium.`;

export const command: Command = {
  async run(argv) {
    const { values, positionals } = parse(argv, { out: { type: 'string', short: 'o' }, x: { type: 'string' }, 'log-y': { type: 'boolean' }, smoothing: { type: 'string' } }, true);
    if (values.help) {
      console.log(USAGE);
      return 0;
    }
    if (positionals.length === 0) throw new UserError('give one or more run directories: llama-ts plot RUN_DIR... --out curves.svg');
    const out = str(values.out);
    if (!out) throw new UserError('give --out curves.svg or --out curves.png');
    const x = str(values.x) ?? 'step';
    if (x !== 'step' && x !== 'tokens') throw new UserError(`--x must be step or tokens, got '${x}'`);
    const smoothing = values.smoothing === undefined ? 0.9 : Number(values.smoothing);
    if (!(smoothing >= 0 && smoothing < 1)) throw new UserError(`--smoothing must be in [0, 1), got ${String(values.smoothing)}`);
    await writePlot(readRuns(positionals), out, { x, logY: Boolean(values['log-y']), smoothing });
    console.error(`wrote ${out}`);
    return 0;
  },
};
