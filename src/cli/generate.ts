import type { Command } from './main.js';
import { parse, str } from './args.js';
import { modelOptions, loadModelArg, MODEL_HELP, samplingOptions, samplingArgs, SAMPLING_HELP } from './infer-common.js';
import { Decoder, generateStream, emptyStats } from '../inference/generate.js';
import { UserError } from '../util/errors.js';

const HELP = `usage: llama-ts generate --model PATH --prompt TEXT [--prompt TEXT ...] [options]

${MODEL_HELP}
prompt:   --prompt TEXT (repeat for a batch, decoded together)  --ids 1,2,3 (token ids instead of text)  --no-bos
${SAMPLING_HELP}
output:   --json (one JSON line per prompt with text, tokens and speed; no streaming)
Streams the continuation of a single prompt as it is generated; prefill and decode speed go to stderr.`;

export const command: Command = {
  summary: 'generate text with a KV cache from any model format (streaming, sampling, stop strings, batches)',
  async run(argv) {
    const { values } = parse(argv, { ...modelOptions, ...samplingOptions, prompt: { type: 'string', short: 'p', multiple: true }, ids: { type: 'string' }, 'no-bos': { type: 'boolean' }, json: { type: 'boolean' } });
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    const { model, tokenizer } = loadModelArg(values);
    const texts = Array.isArray(values.prompt) ? values.prompt.map(String) : [];
    const bos = values['no-bos'] ? [] : [tokenizer.bosId];
    let prompts: number[][];
    const ids = str(values.ids);
    if (ids !== undefined) {
      if (texts.length) throw new UserError('give --prompt or --ids, not both');
      const toks = ids.split(/[\s,]+/).filter(Boolean).map(Number);
      if (!toks.every((t) => Number.isInteger(t))) throw new UserError(`--ids expects comma-separated integers, got '${ids}'`);
      prompts = [[...bos, ...toks]];
    } else {
      prompts = (texts.length ? texts : ['']).map((t) => [...bos, ...tokenizer.encode(t)]);
    }
    const o = { ...samplingArgs(values, tokenizer.eosId), tokenizer };
    const dec = new Decoder(model);
    const stats = emptyStats();
    const stream = !values.json && prompts.length === 1;
    const it = generateStream(dec, prompts, o, stats);
    let r = await it.next(); // validates and prefills: errors surface before anything is printed
    if (stream) process.stdout.write(texts[0] ?? '');
    while (!r.done) {
      if (stream) process.stdout.write(r.value.text);
      r = await it.next();
    }
    const results = r.value;
    const speed = {
      prefill_tokens: stats.prefillTokens, prefill_tokens_per_s: stats.prefillTokens / Math.max(stats.prefillSeconds, 1e-9),
      decode_tokens: stats.decodeTokens, decode_tokens_per_s: stats.decodeTokens / Math.max(stats.decodeSeconds, 1e-9),
    };
    if (values.json) {
      results.forEach((res, i) => console.log(JSON.stringify({ prompt: texts[i] ?? null, text: res.text, tokens: res.tokens, finish: res.finish, ...speed })));
    } else if (!stream) {
      results.forEach((res, i) => process.stdout.write(`--- ${i + 1} ---\n${texts[i] ?? ''}${res.text}\n`));
    } else {
      process.stdout.write('\n');
    }
    if (!values.json) {
      process.stderr.write(`[${results.map((x) => x.finish).join(', ')}] prefill ${speed.prefill_tokens} tokens at ${speed.prefill_tokens_per_s.toFixed(1)} tok/s, decode ${speed.decode_tokens} tokens at ${speed.decode_tokens_per_s.toFixed(1)} tok/s\n`);
    }
    return 0;
  },
};
