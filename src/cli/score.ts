import { readFileSync } from 'node:fs';
import type { Command } from './main.js';
import { parse, str } from './args.js';
import { modelOptions, loadModelArg, MODEL_HELP } from './infer-common.js';
import { scoreTokens } from '../inference/score.js';
import { Decoder } from '../inference/generate.js';
import { UserError } from '../util/errors.js';

const HELP = `usage: llama-ts score --model PATH (--text TEXT | --ids FILE) [--no-bos]

Teacher-forced scoring: prints one JSON line with the mean loss (nats per predicted token), the perplexity and the
log-probability of each next token (logprobs[i] = log p(token[i+1] | tokens[0..i])).
--text   tokenized with the model's tokenizer, BOS prepended unless --no-bos
--ids    a file of token ids (JSON array, or integers separated by spaces, commas or newlines); used as given
${MODEL_HELP}`;

export function parseIds(text: string, what: string): number[] {
  const t = text.trim();
  let ids: unknown[];
  if (t.startsWith('[')) {
    try {
      ids = JSON.parse(t) as unknown[];
    } catch {
      throw new UserError(`${what} is not a valid JSON array`);
    }
    if (!Array.isArray(ids)) throw new UserError(`${what} is not a JSON array`);
  } else ids = t.split(/[\s,]+/).filter(Boolean).map(Number);
  if (!ids.every((x) => typeof x === 'number' && Number.isInteger(x))) throw new UserError(`${what} must contain integer token ids only`);
  return ids as number[];
}

export const command: Command = {
  async run(argv) {
    const { values } = parse(argv, { ...modelOptions, text: { type: 'string' }, ids: { type: 'string' }, 'no-bos': { type: 'boolean' } });
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    const text = str(values.text);
    const idsFile = str(values.ids);
    if ((text === undefined) === (idsFile === undefined)) throw new UserError('give exactly one of --text TEXT or --ids FILE');
    let fileIds: number[] | null = null;
    if (idsFile !== undefined) {
      let raw: string;
      try {
        raw = readFileSync(idsFile, 'utf8');
      } catch (e) {
        throw new UserError(`cannot read --ids file '${idsFile}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
      fileIds = parseIds(raw, `--ids file '${idsFile}'`);
    }
    const { model, tokenizer } = loadModelArg(values);
    const ids = fileIds ?? [...(values['no-bos'] ? [] : [tokenizer.bosId]), ...tokenizer.encode(text as string)];
    const r = scoreTokens(new Decoder(model), ids);
    console.log(JSON.stringify(r));
    return 0;
  },
};
