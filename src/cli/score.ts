import { readFileSync } from 'node:fs';
import type { Command } from './main.js';
import { parse, str, num } from './args.js';
import { modelOptions, loadModelArg, MODEL_HELP } from './infer-common.js';
import { scoreTokens, compareModels } from '../inference/score.js';
import { Decoder } from '../inference/generate.js';
import { UserError } from '../util/errors.js';

const HELP = `usage: llama-ts score --model PATH (--text TEXT | --text-file FILE | --ids FILE) [--no-bos] [--reference PATH]

Teacher-forced scoring: prints one JSON line with the mean loss (nats per predicted token), the perplexity and the
log-probability of each next token (logprobs[i] = log p(token[i+1] | tokens[0..i])).
--text       tokenized with the model's tokenizer, BOS prepended unless --no-bos
--text-file  the same for the text of a file
--ids        a file of token ids (JSON array, or integers separated by spaces, commas or newlines); used as given
--reference PATH   compare against a reference model (e.g. the F32 file a quantized one was made from): prints both
             perplexities, the mean KL divergence KL(p_reference ‖ p_model) per predicted token (also max, p99) and
             how often the two agree on the most likely token; text longer than the context is scored in windows
             of the context length (--window N to choose), each from an empty cache, --chunk positions per
             decoder step (default 128, as a prompt is prefilled; 1 = as tokens are decoded)
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

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new UserError(`cannot read --text-file '${path}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

export const command: Command = {
  async run(argv) {
    const { values } = parse(argv, {
      ...modelOptions, text: { type: 'string' }, 'text-file': { type: 'string' }, ids: { type: 'string' }, 'no-bos': { type: 'boolean' },
      reference: { type: 'string' }, window: { type: 'string' }, chunk: { type: 'string' },
    });
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    const textFile = str(values['text-file']);
    const idsFile = str(values.ids);
    if ([values.text, textFile, idsFile].filter((v) => v !== undefined).length !== 1) throw new UserError('give exactly one of --text TEXT, --text-file FILE or --ids FILE');
    const text = textFile !== undefined ? readText(textFile) : str(values.text);
    const window = num(values.window, 'window');
    if (window !== undefined && (!Number.isInteger(window) || window < 2)) throw new UserError('--window must be an integer >= 2');
    if (window !== undefined && values.reference === undefined) throw new UserError('--window applies to --reference scoring');
    const chunk = num(values.chunk, 'chunk');
    if (chunk !== undefined && (!Number.isInteger(chunk) || chunk < 1)) throw new UserError('--chunk must be an integer >= 1');
    if (chunk !== undefined && values.reference === undefined) throw new UserError('--chunk applies to --reference scoring');
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
    const refPath = str(values.reference);
    if (refPath !== undefined) {
      const reference = loadModelArg({ ...values, model: refPath });
      if (reference.model.config.vocabSize !== model.config.vocabSize) throw new UserError(`--reference has a vocabulary of ${reference.model.config.vocabSize} tokens, --model ${model.config.vocabSize}`);
      const maxWin = Math.min(model.config.maxSeqLen, reference.model.config.maxSeqLen);
      if (window !== undefined && window > maxWin) throw new UserError(`--window ${window} exceeds the models' context (${maxWin})`);
      console.log(JSON.stringify(compareModels(new Decoder(model), new Decoder(reference.model), ids, window ?? maxWin, chunk)));
      return 0;
    }
    const r = scoreTokens(new Decoder(model), ids);
    console.log(JSON.stringify(r));
    return 0;
  },
};
