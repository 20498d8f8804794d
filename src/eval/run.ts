/**
 * Running a task on a model: the prompts (description, few-shot examples drawn with the task's seed, the document),
 * the requests each output type makes, and the metrics. Log-likelihoods go through scoreLoglik (batched over the
 * KV-cache path), generations through the inference layer's greedy batched generate.
 *
 *   multiple_choice        log P(target_delimiter + choice | context) per choice → acc, acc_norm (÷ the choice's
 *                          length in characters), acc_answer (− log P(same | "Answer:"), the paper's OpenBookQA/BoolQ rule)
 *   generate_until         greedy generation until a stop string → exact_match (normalize.ts)
 *   loglikelihood_rolling  every token of the document predicted once, in windows of the model's context →
 *                          perplexity (per token), word_perplexity, byte_perplexity, bits_per_byte, bits_per_word
 */
import type { Llama } from '../model/llama.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { Decoder, generate } from '../inference/generate.js';
import { Rng } from '../util/rng.js';
import { UserError } from '../util/errors.js';
import { scoreLoglik, type LoglikRequest } from './loglik.js';
import { exactMatch } from './normalize.js';
import type { Task, TaskDoc, TaskSpec } from './task.js';

export interface EvalOptions {
  /** Few-shot examples per prompt (default: the task's num_fewshot). */
  shots?: number;
  /** Evaluate only the first N documents. */
  limit?: number;
  /** Sequences scored or generated together (default 8). */
  batch?: number;
  /** Seed of the few-shot draw (default: the task's fewshot_seed). */
  seed?: number;
  /** loglikelihood_rolling: tokens predicted per window after the first (default: the task's, else half the context). */
  stride?: number;
  /** Progress: units of work done of total (requests scored, or documents generated). */
  onProgress?: (done: number, total: number) => void;
}

export interface TaskResult {
  task: string;
  output_type: Task['spec']['outputType'];
  /** Documents evaluated. */
  n: number;
  shots: number;
  /** The task's metrics (its metric_list), each a mean over documents or, for perplexities, over tokens/bytes/words. */
  metrics: Record<string, number>;
  /** Standard error of each mean metric (sample standard deviation / √n); none for the corpus-level perplexities. */
  stderr: Record<string, number>;
  /** One record per document (what --out writes). */
  docs: Array<Record<string, unknown>>;
}

/** The answer text a few-shot example shows after its prompt. */
function answerText(d: TaskDoc): string {
  if (d.choices) return d.choices[d.gold!];
  if (d.targets) return d.targets[0];
  return '';
}

/**
 * The few-shot examples for document `doc`: `k` distinct documents of the pool drawn by a PRNG seeded with
 * (seed, doc.id), so a document's prompt does not depend on --limit, --batch or the other documents. Without an
 * example split the pool is the evaluated documents, the document itself left out.
 */
export function drawFewshot(task: Task, doc: TaskDoc, k: number, seed: number): TaskDoc[] {
  if (k === 0) return [];
  checkShots(task, k);
  const pool = task.fewshot ?? task.docs.filter((d) => d.id !== doc.id);
  const rng = new Rng((seed ^ Math.imul(doc.id + 1, 0x9e3779b1)) >>> 0);
  const idx = pool.map((_, i) => i);
  for (let i = 0; i < k; i++) {
    const j = i + rng.int(idx.length - i);
    [idx[i], idx[j]] = [idx[j], idx[i]];
  }
  return idx.slice(0, k).map((i) => pool[i]);
}

/** Refuses, in one line naming the task file, more shots than the task has examples for. */
export function checkShots(task: Task, k: number): void {
  const have = task.fewshot ? task.fewshot.length : task.docs.length - 1;
  if (k > have) {
    const what = task.fewshot ? `its few-shot split has ${have}` : `it has no few-shot split and ${have} other documents`;
    throw new UserError(`${task.spec.file}: --shots ${k} needs ${k} example documents but ${what}`);
  }
}

/** description + examples (prompt, target delimiter, answer) joined by the few-shot delimiter + the document's prompt. */
export function buildContext(spec: TaskSpec, examples: TaskDoc[], doc: TaskDoc): string {
  const shots = examples.map((ex) => ex.text + spec.targetDelimiter + answerText(ex));
  return spec.description + shots.map((s) => s + spec.fewshotDelimiter).join('') + doc.text;
}

/** Tokens of context and of context + continuation with BOS; the continuation starts where the two first differ. */
export function continuationRequest(tok: Tokenizer, context: string, continuation: string, maxSeq: number): LoglikRequest {
  const ctx = [tok.bosId, ...tok.encode(context)];
  let ids = [tok.bosId, ...tok.encode(context + continuation)];
  let from = 0;
  while (from < ctx.length && from < ids.length - 1 && ctx[from] === ids[from]) from++;
  // Keep the last maxSeq + 1 tokens (maxSeq are fed; the last is only predicted), cutting the context's start.
  const over = ids.length - 1 - maxSeq;
  if (over > 0) {
    if (from - over < 1) throw new UserError(`a continuation of ${ids.length - from} tokens does not fit the model's context of ${maxSeq}`);
    ids = ids.slice(over);
    from -= over;
  }
  return { ids, from };
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
}

function stderrOf(xs: number[]): number {
  if (xs.length < 2) return NaN;
  const m = mean(xs);
  const v = xs.reduce((a, b) => a + (b - m) * (b - m), 0) / (xs.length - 1);
  return Math.sqrt(v / xs.length);
}

function argmax(xs: number[]): number {
  let b = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i] > xs[b]) b = i;
  return b;
}

/** Runs a loaded task on a model; the metrics and a record per document. */
export async function runTask(model: Llama, tokenizer: Tokenizer, task: Task, o: EvalOptions = {}): Promise<TaskResult> {
  const spec = task.spec;
  const shots = o.shots ?? spec.numFewshot;
  if (!Number.isInteger(shots) || shots < 0) throw new UserError(`shots must be a non-negative integer, got ${shots}`);
  if (o.limit !== undefined && !(Number.isInteger(o.limit) && o.limit > 0)) throw new UserError(`limit must be a positive integer, got ${o.limit}`);
  const batch = o.batch ?? 8;
  if (!Number.isInteger(batch) || batch < 1) throw new UserError(`batch must be a positive integer, got ${batch}`);
  const seed = o.seed ?? spec.fewshotSeed;
  const docs = o.limit ? task.docs.slice(0, o.limit) : task.docs;
  const dec = new Decoder(model);
  const maxSeq = model.config.maxSeqLen;
  const contexts = spec.outputType === 'loglikelihood_rolling' ? [] : docs.map((d) => buildContext(spec, drawFewshot(task, d, shots, seed), d));
  const base = { task: spec.name, output_type: spec.outputType, n: docs.length, shots };
  const metrics: Record<string, number> = {};
  const stderr: Record<string, number> = {};
  const perDoc: Array<Record<string, unknown>> = [];
  const report = (values: Record<string, number[]>) => {
    for (const m of spec.metrics) {
      metrics[m] = mean(values[m]);
      const se = stderrOf(values[m]);
      if (Number.isFinite(se)) stderr[m] = se;
    }
  };

  if (spec.outputType === 'multiple_choice') {
    const withAnswer = spec.metrics.includes('acc_answer');
    const reqs: LoglikRequest[] = [];
    docs.forEach((d, i) => {
      for (const c of d.choices!) reqs.push(continuationRequest(tokenizer, contexts[i], spec.targetDelimiter + c, maxSeq));
      if (withAnswer) for (const c of d.choices!) reqs.push(continuationRequest(tokenizer, spec.unconditionalContext, spec.targetDelimiter + c, maxSeq));
    });
    const res = scoreLoglik(dec, reqs, { batch, onProgress: (k) => o.onProgress?.(k, reqs.length) });
    const values: Record<string, number[]> = { acc: [], acc_norm: [], acc_answer: [] };
    let r = 0;
    for (const [i, d] of docs.entries()) {
      const k = d.choices!.length;
      const ll = res.slice(r, r + k).map((x) => x.logprob);
      r += k;
      const llu = withAnswer ? res.slice(r, r + k).map((x) => x.logprob) : null;
      if (withAnswer) r += k;
      const pred = argmax(ll);
      const predNorm = argmax(ll.map((x, j) => x / [...d.choices![j]].length)); // characters (code points), not UTF-16 units
      const rec: Record<string, unknown> = { doc: d.id, file: d.file, line: d.line, context: contexts[i], choices: d.choices, gold: d.gold, loglik: ll };
      values.acc.push(pred === d.gold ? 1 : 0);
      values.acc_norm.push(predNorm === d.gold ? 1 : 0);
      Object.assign(rec, { pred, pred_norm: predNorm, acc: values.acc[i], acc_norm: values.acc_norm[i] });
      if (llu) {
        const predAnswer = argmax(ll.map((x, j) => x - llu[j]));
        values.acc_answer.push(predAnswer === d.gold ? 1 : 0);
        Object.assign(rec, { loglik_unconditional: llu, pred_answer: predAnswer, acc_answer: values.acc_answer[i] });
      }
      perDoc.push(rec);
    }
    report(values);
  } else if (spec.outputType === 'generate_until') {
    const room = maxSeq - spec.maxGenToks;
    if (room < 2) throw new UserError(`${spec.file}: max_gen_toks ${spec.maxGenToks} leaves no room for a prompt in the model's context of ${maxSeq}`);
    const prompts = contexts.map((c) => {
      const ids = [tokenizer.bosId, ...tokenizer.encode(c)];
      return ids.length > room ? ids.slice(ids.length - room) : ids;
    });
    const values: Record<string, number[]> = { exact_match: [] };
    for (let b = 0; b < docs.length; b += batch) {
      const out = await generate(dec, prompts.slice(b, b + batch), {
        maxTokens: spec.maxGenToks, temperature: 0, topK: 0, topP: 1, seed: 0, stop: spec.until, tokenizer,
        stopTokens: [tokenizer.eosId], onContextFull: 'stop',
      });
      out.forEach((g, j) => {
        const d = docs[b + j];
        const em = exactMatch(g.text, d.targets!);
        values.exact_match.push(em);
        perDoc.push({ doc: d.id, file: d.file, line: d.line, context: contexts[b + j], prediction: g.text, targets: d.targets, exact_match: em });
      });
      o.onProgress?.(Math.min(docs.length, b + batch), docs.length);
    }
    report(values);
  } else {
    const stride = o.stride ?? spec.stride ?? Math.max(1, Math.floor(maxSeq / 2));
    if (!Number.isInteger(stride) || stride < 1 || stride > maxSeq) throw new UserError(`stride must be an integer in [1, ${maxSeq}] (the model's context), got ${stride}`);
    const reqs: LoglikRequest[] = [];
    const owner: number[] = [];
    const stats = docs.map((d, i) => {
      const seq = [tokenizer.bosId, ...tokenizer.encode(d.text)];
      for (const w of rollingWindows(seq.length, maxSeq, stride)) {
        reqs.push({ ids: seq.slice(w.start, w.end), from: w.from });
        owner.push(i);
      }
      return { loglik: 0, tokens: seq.length - 1, bytes: Buffer.byteLength(d.text, 'utf8'), words: d.text.split(/\s+/).filter(Boolean).length };
    });
    const res = scoreLoglik(dec, reqs, { batch, onProgress: (k) => o.onProgress?.(k, reqs.length) });
    res.forEach((r, k) => (stats[owner[k]].loglik += r.logprob));
    const sum = (f: (s: (typeof stats)[number]) => number) => stats.reduce((a, s) => a + f(s), 0);
    const nll = -sum((s) => s.loglik);
    const all: Record<string, number> = {
      perplexity: Math.exp(nll / sum((s) => s.tokens)),
      word_perplexity: Math.exp(nll / sum((s) => s.words)),
      byte_perplexity: Math.exp(nll / sum((s) => s.bytes)),
      bits_per_byte: nll / sum((s) => s.bytes) / Math.LN2,
      bits_per_word: nll / sum((s) => s.words) / Math.LN2,
    };
    for (const m of spec.metrics) metrics[m] = all[m];
    stats.forEach((s, i) => perDoc.push({ doc: docs[i].id, file: docs[i].file, line: docs[i].line, ...s }));
  }
  return { ...base, metrics, stderr, docs: perDoc };
}

/**
 * The windows that predict tokens 1..n-1 of a sequence of n (token 0 is BOS) once each: every window feeds at most
 * `maxSeq` tokens and ends at the last token it predicts; the first predicts all of its tokens, each later one the
 * next `stride` tokens, so a token sees at least maxSeq − stride tokens before it (all of them inside the first
 * window; every earlier token when stride is 1). A window is ids [start, end) scoring ids [from + start, end).
 */
export function rollingWindows(n: number, maxSeq: number, stride: number): Array<{ start: number; end: number; from: number }> {
  const out: Array<{ start: number; end: number; from: number }> = [];
  if (n < 2) return out;
  let done = Math.min(n, maxSeq + 1);
  out.push({ start: 0, end: done, from: 1 });
  while (done < n) {
    const end = Math.min(n, done + stride);
    const start = Math.max(0, end - maxSeq - 1);
    out.push({ start, end, from: done - start });
    done = end;
  }
  return out;
}
