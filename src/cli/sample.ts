/** `llama-ts sample`: kept for scripts written before `generate`; the same command with its older flag names. */
import type { Command } from './main.js';
import { parse, str } from './args.js';
import { runGenerate } from './generate.js';
import { UserError } from '../util/errors.js';

export const sampleOptions = {
  checkpoint: { type: 'string' },
  prompt: { type: 'string' },
  tokens: { type: 'string' },
  temperature: { type: 'string' },
  'top-k': { type: 'string' },
  'top-p': { type: 'string' },
  seed: { type: 'string' },
  count: { type: 'string' },
  backend: { type: 'string' },
} as const;

export const command: Command = {
  async run(argv) {
    const { values } = parse(argv, sampleOptions);
    if (values.help) {
      console.log('usage: llama-ts sample --checkpoint PATH [--prompt TEXT] [--tokens N (200)] [--temperature T] [--top-k K] [--top-p P] [--seed S] [--count N] [--backend NAME]');
      console.log("the same as 'llama-ts generate --model PATH --count N --max-tokens N --context-full shift'; see 'llama-ts generate --help'");
      return 0;
    }
    const path = str(values.checkpoint);
    if (!path) throw new UserError('--checkpoint PATH is required (a run directory, one of its checkpoints, or any model generate reads)');
    const { checkpoint: _c, tokens, prompt, ...rest } = values;
    return runGenerate({ ...rest, model: path, 'max-tokens': tokens ?? '200', prompt: prompt === undefined ? [] : [String(prompt)], 'context-full': 'shift' }, true);
  },
};
