import { createInterface } from 'node:readline';
import type { Command } from './main.js';
import { parse } from './args.js';
import { CoalescedWriter, modelOptions, loadModelArg, MODEL_HELP, samplingOptions, samplingArgs, SAMPLING_HELP, kvCacheOptions, kvCacheArg, KV_CACHE_HELP } from './infer-common.js';
import { Decoder, generateStream } from '../inference/generate.js';
import { UserError } from '../util/errors.js';

const HELP = `usage: llama-ts chat --model PATH [options]

A plain completion loop: each line read from standard input is a prompt; its continuation is streamed back.
An empty line or end of input quits.
${MODEL_HELP}
${KV_CACHE_HELP}
${SAMPLING_HELP}`;

export const command: Command = {
  async run(argv) {
    const { values } = parse(argv, { ...modelOptions, ...samplingOptions, ...kvCacheOptions });
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    const kvCache = kvCacheArg(values);
    const { model, tokenizer } = loadModelArg(values);
    const base = { ...samplingArgs(values, tokenizer.eosId), tokenizer, onContextFull: 'stop' as const };
    const dec = new Decoder(model, { kvCache });
    const tty = process.stdin.isTTY;
    const rl = createInterface({ input: process.stdin, terminal: false });
    if (tty) process.stdout.write('> ');
    let turn = 0;
    for await (const line of rl) {
      if (line.trim() === '') break;
      const prompt = [tokenizer.bosId, ...tokenizer.encode(line)];
      try {
        const out = new CoalescedWriter();
        out.write(line);
        try {
          for await (const ev of generateStream(dec, [prompt], { ...base, seed: base.seed + turn })) out.write(ev.text);
        } finally {
          out.flush();
        }
        process.stdout.write('\n');
      } catch (e) {
        if (!(e instanceof UserError)) throw e;
        process.stdout.write('\n');
        process.stderr.write(`llama-ts: error: ${e.message}\n`);
      }
      turn++;
      if (tty) process.stdout.write('> ');
    }
    rl.close();
    return 0;
  },
};
