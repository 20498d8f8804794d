/**
 * Supervised fine-tuning data (`train --sft FILE.jsonl`): prompt/response pairs, one JSON object per line,
 *
 *   {"prompt": "What is the capital of France?", "response": "Paris"}
 *
 * Both fields are required strings; other fields are ignored; blank lines are skipped. A template places them in
 * the text the model sees (`--sft-template`: a name from SFT_TEMPLATES or any string holding {prompt} and
 * {response}); everything before {response} is the prompt part, whose tokens are not trained on. Whitespace at the
 * end of the prompt part moves to the start of the response (as lm-evaluation-harness splits context and
 * continuation), so "Answer: {response}" trains " Paris" after "Answer:", which is what a harness scores.
 *
 * Each example becomes one row: [BOS] prompt-part response-part [EOS]; inputs are the row, targets the row shifted
 * by one, with every target inside the prompt part (and the padding after EOS) set to -1: the loss and its gradient
 * cover the response and EOS only. Rows longer than --seq are cut at --seq. Every tenth example (from ten on) is
 * held out. Batches take the examples in a seeded order, reshuffled each epoch; the position (epoch, cursor) is the
 * state a checkpoint stores, so a resumed run continues with exactly the next example.
 */
import { readFileSync, existsSync } from 'node:fs';
import { UserError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import type { Tokenizer } from '../tokenizer/types.js';
import type { Batch, BatchSource } from './source.js';

export interface SftExample {
  prompt: string;
  response: string;
  /** 1-based line in the file. */
  line: number;
}

/** Named templates; a custom one is any string with {prompt} before {response}. */
export const SFT_TEMPLATES: Readonly<Record<string, string>> = {
  plain: '{prompt}{response}',
  qa: 'Question: {prompt}\nAnswer: {response}',
  alpaca: 'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\n{prompt}\n\n### Response:\n{response}',
  chat: '[INST] {prompt} [/INST] {response}',
};
export const DEFAULT_SFT_TEMPLATE = 'qa';

/** The template text for a name or a custom template; one line when it is neither. */
export function resolveSftTemplate(nameOrTemplate: string): string {
  const t = SFT_TEMPLATES[nameOrTemplate] ?? nameOrTemplate;
  const p = t.indexOf('{prompt}');
  const r = t.indexOf('{response}');
  if (p < 0 || r < 0 || r < p || t.indexOf('{response}', r + 1) >= 0 || t.indexOf('{prompt}', p + 1) >= 0) {
    throw new UserError(`--sft-template '${nameOrTemplate}' is neither a template name (${Object.keys(SFT_TEMPLATES).join(', ')}) nor a text holding {prompt} once, then {response} once at its end`);
  }
  if (t.slice(r + '{response}'.length) !== '') throw new UserError(`--sft-template '${nameOrTemplate}': {response} must end the template (EOS follows it)`);
  return t;
}

/** The prompt part (not trained on) and the response part of one example under a template. */
export function applyTemplate(template: string, e: { prompt: string; response: string }): { prompt: string; response: string } {
  const head = template.slice(0, template.indexOf('{response}')).replace('{prompt}', () => e.prompt);
  const trailing = /\s*$/.exec(head)?.[0] ?? '';
  return { prompt: head.slice(0, head.length - trailing.length), response: trailing + e.response };
}

/** Reads and checks an SFT file: every error names the file and the line. */
export function readSftFile(path: string): SftExample[] {
  if (!existsSync(path)) throw new UserError(`SFT file '${path}' does not exist`);
  const lines = readFileSync(path, 'utf8').split('\n');
  const out: SftExample[] = [];
  lines.forEach((text, i) => {
    const line = i + 1;
    if (text.trim() === '') return;
    let obj: unknown;
    try {
      obj = JSON.parse(text);
    } catch (e) {
      throw new UserError(`${path}:${line}: not valid JSON (${(e as Error).message})`);
    }
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new UserError(`${path}:${line}: expected a JSON object with "prompt" and "response"`);
    const o = obj as Record<string, unknown>;
    for (const f of ['prompt', 'response']) {
      if (!(f in o)) throw new UserError(`${path}:${line}: missing field "${f}" (each line needs "prompt" and "response")`);
      if (typeof o[f] !== 'string') throw new UserError(`${path}:${line}: field "${f}" must be a string, got ${JSON.stringify(o[f])}`);
    }
    if ((o.response as string).length === 0) throw new UserError(`${path}:${line}: field "response" is empty: there is nothing to train on`);
    out.push({ prompt: o.prompt as string, response: o.response as string, line });
  });
  if (out.length === 0) throw new UserError(`SFT file '${path}' has no examples`);
  return out;
}

/** One tokenized example: ids = [BOS, prompt…, response…, EOS], of which the first `promptLen` are not trained on. */
export interface SftRow {
  ids: Int32Array;
  promptLen: number;
}

export function tokenizeSft(examples: SftExample[], tok: Tokenizer, template: string): SftRow[] {
  return examples.map((e) => {
    const parts = applyTemplate(template, e);
    const p = tok.encode(parts.prompt);
    const r = tok.encode(parts.response);
    return { ids: Int32Array.from([tok.bosId, ...p, ...r, tok.eosId]), promptLen: 1 + p.length };
  });
}

/**
 * Writes example `row` into inputs/targets [seq] at `o`: targets inside the prompt and after EOS are -1, the
 * padding input is EOS. Returns the trained targets.
 */
function fillRow(row: SftRow, seq: number, tokens: Int32Array, targets: Int32Array, o: number): number {
  let trained = 0;
  for (let j = 0; j < seq; j++) {
    const inRow = j + 1 < row.ids.length;
    tokens[o + j] = j < row.ids.length ? row.ids[j] : row.ids[row.ids.length - 1];
    const t = inRow && j + 1 >= row.promptLen ? row.ids[j + 1] : -1;
    targets[o + j] = t;
    if (t >= 0) trained++;
  }
  return trained;
}

export interface SftState {
  kind: 'sft';
  seed: number;
  epoch: number;
  cursor: number;
  examples: number;
}

/** Batches of whole examples, one per row, in a seeded order reshuffled every epoch (or in file order: `shuffle` false). */
export class SftSource implements BatchSource {
  /** Targets of prompts and padding are -1: the step averages the loss over the trained targets only. */
  readonly masked = true;
  private order: Uint32Array;
  private epoch = 0;
  private cursor = 0;

  constructor(readonly rows: SftRow[], private seed: number, private readonly shuffle = true) {
    if (rows.length === 0) throw new UserError('no SFT examples');
    this.order = this.permutation(0);
  }

  private permutation(epoch: number): Uint32Array {
    const p = Uint32Array.from(this.rows.keys());
    if (!this.shuffle) return p;
    const rng = new Rng((this.seed ^ Math.imul(epoch + 1, 0x9e3779b1)) >>> 0);
    for (let i = p.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [p[i], p[j]] = [p[j], p[i]];
    }
    return p;
  }

  next(batch: number, seq: number): Batch {
    const tokens = new Int32Array(batch * seq);
    const targets = new Int32Array(batch * seq);
    for (let b = 0; b < batch; b++) {
      if (this.cursor === this.order.length) {
        this.epoch++;
        this.cursor = 0;
        this.order = this.permutation(this.epoch);
      }
      fillRow(this.rows[this.order[this.cursor++]], seq, tokens, targets, b * seq);
    }
    return { tokens, targets };
  }

  state(): SftState {
    return { kind: 'sft', seed: this.seed, epoch: this.epoch, cursor: this.cursor, examples: this.rows.length };
  }

  restore(state: unknown): void {
    const s = state as SftState;
    if (!s || s.kind !== 'sft' || !Number.isInteger(s.epoch) || !Number.isInteger(s.cursor)) throw new UserError('checkpoint data position is not an SFT position (was the run trained with --sft?)');
    if (s.examples !== this.rows.length) throw new UserError(`checkpoint was trained on ${s.examples} SFT examples, this file has ${this.rows.length}: resume needs the same data`);
    this.seed = s.seed;
    this.epoch = s.epoch;
    this.cursor = s.cursor;
    this.order = this.permutation(this.epoch);
  }
}

export interface SftData {
  train: SftSource;
  heldOut: (() => SftSource) | null;
  trainTokens: number;
  heldOutTokens: number;
  /** Examples longer than seq + 1 tokens (cut at seq). */
  truncated: number;
  trainExamples: number;
  heldOutExamples: number;
}

/** An SFT file as training data: every tenth example (from ten examples on) held out, in file order. */
export function openSftData(path: string, tok: Tokenizer, seed: number, seq: number, template: string): SftData {
  const rows = tokenizeSft(readSftFile(path), tok, resolveSftTemplate(template));
  for (const r of rows) for (const id of r.ids) if (id >= tok.vocabSize) throw new UserError(`SFT file '${path}': token ${id} outside the tokenizer's vocabulary`);
  const held = rows.length >= 10 ? rows.filter((_, i) => i % 10 === 9) : [];
  const train = rows.length >= 10 ? rows.filter((_, i) => i % 10 !== 9) : rows;
  const count = (rs: SftRow[]) => rs.reduce((a, r) => a + Math.min(r.ids.length, seq + 1), 0);
  return {
    train: new SftSource(train, seed),
    heldOut: held.length ? () => new SftSource(held, seed, false) : null,
    trainTokens: count(train), heldOutTokens: count(held),
    truncated: rows.filter((r) => r.ids.length > seq + 1).length,
    trainExamples: train.length, heldOutExamples: held.length,
  };
}
