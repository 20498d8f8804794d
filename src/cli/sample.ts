import type { Command } from './main.js';
import { parse, int, num, str } from './args.js';
import { createBackend } from '../kernels/index.js';
import { loadAnyModel } from '../io/formats.js';
import { generateRecompute } from '../inference/recompute.js';
import { SAMPLING_DEFAULTS } from '../inference/sampler.js';
import { UserError } from '../util/errors.js';
import type { Llama } from '../model/llama.js';
import type { Tokenizer } from '../tokenizer/types.js';

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

export interface SampleArgs {
  prompt: string;
  tokens: number;
  temperature: number;
  topK: number;
  topP: number;
  seed: number;
  count: number;
}

/** Prints `count` continuations of the prompt, streaming tokens as they come. */
export function printSamples(model: Llama, tok: Tokenizer, a: SampleArgs, write: (s: string) => void = (s) => process.stdout.write(s)): string[] {
  const prompt = [tok.bosId, ...tok.encode(a.prompt)];
  if (prompt.length >= model.config.maxSeqLen) throw new UserError(`prompt is ${prompt.length} tokens; the model's context is ${model.config.maxSeqLen}`);
  const texts: string[] = [];
  for (let i = 0; i < a.count; i++) {
    write(`--- sample ${i + 1} ---\n${a.prompt}`);
    const ids: number[] = [];
    let printed = '';
    generateRecompute(model, prompt, {
      maxTokens: a.tokens, seed: a.seed + i, temperature: a.temperature, topK: a.topK, topP: a.topP, stopAtEos: tok.eosId,
      onToken: (id) => {
        ids.push(id);
        const text = tok.decode(ids);
        // print only complete characters: a byte token may be half of a UTF-8 sequence
        if (!text.endsWith('\ufffd')) {
          write(text.slice(printed.length));
          printed = text;
        }
      },
    });
    const full = tok.decode(ids);
    write(full.slice(printed.length) + '\n');
    texts.push(a.prompt + full);
  }
  return texts;
}

export const command: Command = {
  summary: 'generate text from a checkpoint (full recomputation per token)',
  async run(argv) {
    const { values } = parse(argv, sampleOptions);
    if (values.help) {
      console.log('usage: llama-ts sample --checkpoint DIR [--prompt TEXT] [--tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S] [--count N] [--backend ref]');
      return 0;
    }
    const path = str(values.checkpoint);
    if (!path) throw new UserError('--checkpoint DIR is required (a run directory or one of its checkpoints)');
    const { model, tokenizer } = loadAnyModel(path, createBackend(str(values.backend)), 'ckpt');
    const temperature = num(values.temperature, 'temperature', SAMPLING_DEFAULTS.temperature);
    if (temperature < 0) throw new UserError('--temperature must be >= 0');
    const topP = num(values['top-p'], 'top-p', SAMPLING_DEFAULTS.topP);
    if (!(topP > 0 && topP <= 1)) throw new UserError('--top-p must be in (0, 1]');
    printSamples(model, tokenizer, {
      prompt: str(values.prompt) ?? '', tokens: int(values.tokens, 'tokens', 200, 1), temperature,
      topK: int(values['top-k'], 'top-k', SAMPLING_DEFAULTS.topK, 0), topP, seed: int(values.seed, 'seed', 1, 0), count: int(values.count, 'count', 1, 1),
    });
    return 0;
  },
};
