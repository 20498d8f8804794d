import type { Command } from './main.js';
import { parse, int, str, type Values } from './args.js';
import { CoalescedWriter, modelOptions, loadModelArg, MODEL_HELP, samplingOptions, samplingArgs, SAMPLING_HELP, kvCacheOptions, kvCacheArg, KV_CACHE_HELP } from './infer-common.js';
import { Decoder, generateStream, emptyStats, type GenerateOptions, type GenerationResult, type GenerationStats, type KvCacheType, type TokenEvent } from '../inference/generate.js';
import type { Llama } from '../model/llama.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { UserError, quote } from '../util/errors.js';

const HELP = `usage: llama-ts generate --model PATH --prompt TEXT [--prompt TEXT ...] [options]

${MODEL_HELP}
${KV_CACHE_HELP}
prompt:   --prompt TEXT (repeat for a batch, decoded together)  --ids 1,2,3 (token ids instead of text)  --no-bos
${SAMPLING_HELP}
samples:  --count N   N samples of each prompt (seeds S, S+1, ...), each streamed under '--- sample i ---'
output:   --json (one JSON line per prompt with text, tokens and speed; no streaming)
Streams the continuation of a single prompt as it is generated; prefill and decode speed go to stderr.
'llama-ts sample' is this command with its older flags (--checkpoint, --tokens).`;

export const generateOptions = {
  ...modelOptions, ...samplingOptions, ...kvCacheOptions, prompt: { type: 'string', short: 'p', multiple: true }, ids: { type: 'string' }, 'no-bos': { type: 'boolean' },
  json: { type: 'boolean' }, count: { type: 'string' },
} as const;

/**
 * Prints `count` samples of one prompt one after the other, each streamed under '--- sample i ---' with the prompt
 * text in front (seed, seed + 1, ...). Shared by `generate --count`, `sample` and the demo. Returns the texts.
 */
export async function printSamples(
  model: Llama, tok: Tokenizer, prompt: string, count: number, o: GenerateOptions,
  write: (s: string) => void = (s) => process.stdout.write(s), stats?: GenerationStats, kvCache: KvCacheType = 'f32',
): Promise<string[]> {
  const ids = [tok.bosId, ...tok.encode(prompt)];
  const dec = new Decoder(model, { kvCache });
  const texts: string[] = [];
  for (let i = 0; i < count; i++) {
    const out = new CoalescedWriter(write);
    out.write(`--- sample ${i + 1} ---\n${prompt}`);
    const it = generateStream(dec, [ids], { ...o, tokenizer: tok, seed: o.seed + i }, stats);
    let r: IteratorResult<TokenEvent, GenerationResult[]>;
    try {
      r = await it.next();
      while (!r.done) {
        out.write(r.value.text);
        r = await it.next();
      }
      out.write('\n');
    } finally {
      out.flush();
    }
    texts.push(prompt + r.value[0].text);
  }
  return texts;
}

function speedLine(stats: GenerationStats) {
  return {
    prefill_tokens: stats.prefillTokens, prefill_tokens_per_s: stats.prefillTokens / Math.max(stats.prefillSeconds, 1e-9),
    decode_tokens: stats.decodeTokens, decode_tokens_per_s: stats.decodeTokens / Math.max(stats.decodeSeconds, 1e-9),
  };
}

/** `generate` (and `sample`, with samples = true: always the '--- sample i ---' format) from parsed flags. */
export async function runGenerate(values: Values, samples = false): Promise<number> {
  const kvCache = kvCacheArg(values);
  const { model, tokenizer } = loadModelArg(values);
  const texts = Array.isArray(values.prompt) ? values.prompt.map(String) : [];
  const bos = values['no-bos'] ? [] : [tokenizer.bosId];
  const count = int(values.count, 'count', 1, 1);
  const o = { ...samplingArgs(values, tokenizer.eosId), tokenizer };
  const stats = emptyStats();
  // generate needs something to continue (an explicit --prompt '' is one: the model starts from BOS); `sample` may start from nothing
  if (!samples && texts.length === 0 && values.ids === undefined) throw new UserError("give a prompt: --prompt TEXT (--prompt '' to start from BOS) or --ids 1,2,3");
  if (samples || values.count !== undefined) {
    if (values.json || str(values.ids) !== undefined || texts.length > 1) throw new UserError('--count takes one --prompt (no --ids or --json)');
    await printSamples(model, tokenizer, texts[0] ?? '', count, o, undefined, stats, kvCache);
    const sp = speedLine(stats);
    process.stderr.write(`prefill ${sp.prefill_tokens} tokens at ${sp.prefill_tokens_per_s.toFixed(1)} tok/s, decode ${sp.decode_tokens} tokens at ${sp.decode_tokens_per_s.toFixed(1)} tok/s\n`);
    return 0;
  }
  let prompts: number[][];
  const ids = str(values.ids);
  if (ids !== undefined) {
    if (texts.length) throw new UserError('give --prompt or --ids, not both');
    const parts = ids.split(/[\s,]+/).filter(Boolean);
    if (parts.length === 0) throw new UserError('--ids is empty: give comma-separated token ids, e.g. --ids 1,2,3');
    const toks = parts.map(Number);
    if (!toks.every((t) => Number.isInteger(t) && t >= 0)) throw new UserError(`--ids expects comma-separated non-negative integers, got ${quote(ids)}`);
    prompts = [[...bos, ...toks]];
  } else {
    prompts = (texts.length ? texts : ['']).map((t) => [...bos, ...tokenizer.encode(t)]);
  }
  const dec = new Decoder(model, { kvCache });
  const stream = !values.json && prompts.length === 1;
  const it = generateStream(dec, prompts, o, stats);
  let r = await it.next(); // validates and prefills: errors surface before anything is printed
  const out = new CoalescedWriter();
  if (stream) out.write(texts[0] ?? '');
  try {
    while (!r.done) {
      if (stream) out.write(r.value.text);
      r = await it.next();
    }
  } finally {
    out.flush();
  }
  const results = r.value;
  const speed = speedLine(stats);
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
}

export const command: Command = {
  async run(argv) {
    const { values } = parse(argv, generateOptions);
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    return runGenerate(values);
  },
};
