/**
 * Task files: reading, checking and rendering. A task declares its prompt template, delimiters, description, output
 * type and metrics (the concepts of EleutherAI lm-evaluation-harness's task YAML, in JSON); its documents are JSON
 * objects, one per line. Every document is rendered and checked when the task loads, so a mistake in any of them
 * (a missing field, a gold index out of range, empty choices, a bad template variable) stops the run before the
 * model is touched, with one line naming the file and the line. docs/EVAL.md describes the format.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError, quoteJson } from '../util/errors.js';
import { parseTemplate, renderText, renderValue, TemplateError, type Template } from './template.js';

export type OutputType = 'multiple_choice' | 'generate_until' | 'loglikelihood_rolling';

export const METRICS: Record<OutputType, readonly string[]> = {
  multiple_choice: ['acc', 'acc_norm', 'acc_answer'],
  generate_until: ['exact_match'],
  loglikelihood_rolling: ['perplexity', 'word_perplexity', 'byte_perplexity', 'bits_per_byte', 'bits_per_word'],
};
const DEFAULT_METRICS: Record<OutputType, readonly string[]> = {
  multiple_choice: ['acc', 'acc_norm'],
  generate_until: ['exact_match'],
  loglikelihood_rolling: ['perplexity', 'word_perplexity', 'bits_per_byte', 'bits_per_word'],
};

/** The task's declaration, with defaults filled in. */
export interface TaskSpec {
  name: string;
  /** The file the task was declared in. */
  file: string;
  outputType: OutputType;
  /** Text put verbatim before the few-shot examples (end it with the delimiter you want). */
  description: string;
  /** Between a prompt and its answer (" "). */
  targetDelimiter: string;
  /** Between few-shot examples, and between the last example and the question ("\n\n"). */
  fewshotDelimiter: string;
  metrics: string[];
  /** Shots when --shots is not given. */
  numFewshot: number;
  /** Seed of the few-shot draw. */
  fewshotSeed: number;
  /** generate_until: generation stops at the first of these strings (cut before it) or after maxGenToks tokens. */
  until: string[];
  maxGenToks: number;
  /** acc_answer: the context of the unconditional log-likelihood (the paper's "Answer:"). */
  unconditionalContext: string;
  /** loglikelihood_rolling: tokens predicted per window after the first (default: half the window). */
  stride: number | null;
}

/** One rendered document. */
export interface TaskDoc {
  /** Index within its split (the order of the files). */
  id: number;
  file: string;
  line: number;
  /** doc_to_text: the prompt (multiple_choice, generate_until) or the whole text (loglikelihood_rolling). */
  text: string;
  /** multiple_choice: the answer options, without the target delimiter. */
  choices?: string[];
  /** multiple_choice: the index of the right choice. */
  gold?: number;
  /** generate_until: the accepted answers (aliases); the first is the one few-shot examples show. */
  targets?: string[];
}

export interface Task {
  spec: TaskSpec;
  /** The documents evaluated. */
  docs: TaskDoc[];
  /** The few-shot pool (the task's example split), or null: examples are drawn from the other evaluated documents. */
  fewshot: TaskDoc[] | null;
}

/** Where the bundled tasks live (data/tasks of the package). */
export const BUNDLED_TASKS_DIR = fileURLToPath(new URL('../../../data/tasks', import.meta.url));

const HEADER_KEYS = new Set([
  'task', 'output_type', 'description', 'doc_to_text', 'doc_to_target', 'doc_to_choice', 'target_delimiter',
  'fewshot_delimiter', 'metric_list', 'num_fewshot', 'fewshot_seed', 'fewshot_split', 'test_split', 'data_files',
  'generation_kwargs', 'unconditional_context', 'rolling_stride', 'tag', 'comment', 'dataset_note',
]);

const isTaskFile = (p: string) => p.endsWith('.jsonl') || p.endsWith('.json');

/**
 * The task files an argument names: a task file, a directory (every .json/.jsonl task file directly in it, sorted),
 * or the name of a bundled task (`capitals-qa`, or `bundled` for all of them).
 */
export function resolveTaskPaths(arg: string): string[] {
  if (existsSync(arg)) {
    if (statSync(arg).isDirectory()) {
      const files = readdirSync(arg).filter(isTaskFile).sort().map((f) => join(arg, f)).filter((f) => isTaskHeaderFile(f));
      if (files.length === 0) throw new UserError(`--task directory '${arg}' holds no task files (.jsonl or .json with a "task" declaration)`);
      return files;
    }
    return [arg];
  }
  const bundled = bundledTaskNames();
  if (arg === 'bundled') return bundled.map((n) => bundledPath(n)!);
  const p = bundledPath(arg);
  if (p) return [p];
  throw new UserError(`--task '${arg}' is neither a file, a directory nor a bundled task (bundled: ${bundled.join(', ')})`);
}

export function bundledTaskNames(): string[] {
  if (!existsSync(BUNDLED_TASKS_DIR)) return [];
  return readdirSync(BUNDLED_TASKS_DIR).filter(isTaskFile).map((f) => f.replace(/\.jsonl?$/, '')).sort();
}

function bundledPath(name: string): string | null {
  for (const ext of ['.jsonl', '.json']) {
    const p = join(BUNDLED_TASKS_DIR, name + ext);
    if (existsSync(p)) return p;
  }
  return null;
}

/** Whether a file in a task directory declares a task (its first JSON value has a "task" key); data files do not. */
function isTaskHeaderFile(f: string): boolean {
  try {
    const text = readFileSync(f, 'utf8');
    const first = f.endsWith('.jsonl') ? text.split('\n').find((l) => l.trim() !== '') ?? '' : text;
    const v = JSON.parse(first) as unknown;
    return v !== null && typeof v === 'object' && !Array.isArray(v) && 'task' in v;
  } catch {
    return f.endsWith('.jsonl') || f.endsWith('.json'); // let loadTask report what is wrong with it
  }
}

/** A JSON value read from a file, with where it came from. */
interface Located {
  value: unknown;
  file: string;
  line: number;
}

function fail(file: string, line: number, msg: string): never {
  throw new UserError(`${file}:${line}: ${msg}`);
}

function readText(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new UserError(`cannot read ${what} '${file}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** Lines of a JSONL file as values, skipping blank lines. */
function readJsonl(file: string, text = readText(file, 'task data file')): Located[] {
  const out: Located[] = [];
  text.split('\n').forEach((raw, i) => {
    const s = raw.trim();
    if (s === '') return;
    let value: unknown;
    try {
      value = JSON.parse(s);
    } catch (e) {
      fail(file, i + 1, `not valid JSON (${(e as Error).message})`);
    }
    out.push({ value, file, line: i + 1 });
  });
  return out;
}

/** The line a key of a multi-line JSON object is written on (for messages about a .json declaration). */
function lineOfKey(text: string, key: string): number {
  const at = text.indexOf(JSON.stringify(key));
  return at < 0 ? 1 : text.slice(0, at).split('\n').length;
}

/** Documents from a .jsonl file (one per line) or a .json file (an object is one document, an array one per item). */
function readDocs(file: string): Located[] {
  if (file.endsWith('.jsonl')) return readJsonl(file);
  const text = readText(file, 'task data file');
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    fail(file, 1, `not valid JSON (${(e as Error).message})`);
  }
  if (!Array.isArray(v)) return [{ value: v, file, line: 1 }];
  // one item per line when the array is written that way; otherwise the line of the opening bracket
  const lines = text.split('\n');
  const itemLine = lines.length >= v.length + 2 ? (i: number) => i + 2 : () => 1;
  return v.map((value, i) => ({ value, file, line: itemLine(i) }));
}

const naturalKey = (s: string) => s.replace(/\d+/g, (d) => d.padStart(12, '0'));

/**
 * A data_files entry: a path relative to the task file, or `npm:PACKAGE/PATH` inside an installed npm package; a '*'
 * in the file name matches any characters (files in natural order: chapter_2 before chapter_10).
 */
function expandDataPath(spec: string, taskFile: string, line: number): string[] {
  let base: string;
  let rel: string;
  if (spec.startsWith('npm:')) {
    const m = /^npm:((?:@[^/]+\/)?[^/]+)\/(.+)$/.exec(spec);
    if (!m) fail(taskFile, line, `data file ${quoteJson(spec)}: write npm:PACKAGE/PATH`);
    const req = createRequire(import.meta.url);
    try {
      base = dirname(req.resolve(`${m[1]}/package.json`));
    } catch {
      fail(taskFile, line, `data file ${quoteJson(spec)}: the npm package ${m[1]} is not installed (npm install ${m[1]})`);
    }
    rel = m[2];
  } else {
    base = dirname(taskFile);
    rel = spec;
  }
  const full = resolve(base, rel);
  const name = basename(full);
  if (!name.includes('*')) {
    if (!existsSync(full)) fail(taskFile, line, `data file ${quoteJson(spec)} does not exist (${full})`);
    return [full];
  }
  const dir = dirname(full);
  const re = new RegExp(`^${name.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    fail(taskFile, line, `data file ${quoteJson(spec)}: cannot list ${dir}`);
  }
  const hits = names.filter((n) => re.test(n)).sort((a, b) => (naturalKey(a) < naturalKey(b) ? -1 : naturalKey(a) > naturalKey(b) ? 1 : 0));
  if (hits.length === 0) fail(taskFile, line, `data file ${quoteJson(spec)} matches no file in ${dir}`);
  return hits.map((n) => join(dir, n));
}

function str(h: Record<string, unknown>, key: string, dflt: string, at: (k: string) => number, file: string): string {
  const v = h[key];
  if (v === undefined) return dflt;
  if (typeof v !== 'string') fail(file, at(key), `"${key}" must be a string, got ${quoteJson(v)}`);
  return v;
}

function template(h: Record<string, unknown>, key: string, at: (k: string) => number, file: string): Template | null {
  const v = h[key];
  if (v === undefined) return null;
  if (typeof v !== 'string') fail(file, at(key), `"${key}" must be a template string, got ${quoteJson(v)}`);
  try {
    return parseTemplate(v);
  } catch (e) {
    if (e instanceof TemplateError) fail(file, at(key), `"${key}": ${e.message}`);
    throw e;
  }
}

/** Reads, checks and renders a task file. */
export function loadTask(file: string): Task {
  const text = readText(file, 'task file');
  let header: Located;
  let inline: Located[] = [];
  if (file.endsWith('.jsonl')) {
    const all = readJsonl(file, text);
    if (all.length === 0) fail(file, 1, 'empty task file: the first line must declare the task ({"task": …, "output_type": …})');
    [header, ...inline] = all;
  } else if (extname(file) === '.json') {
    try {
      header = { value: JSON.parse(text), file, line: 1 };
    } catch (e) {
      fail(file, 1, `not valid JSON (${(e as Error).message})`);
    }
  } else {
    throw new UserError(`task file '${file}' must be .jsonl (declaration on the first line, then documents) or .json (a declaration with data_files)`);
  }
  const h = header.value as Record<string, unknown>;
  const hl = header.line;
  const at = file.endsWith('.jsonl') ? () => hl : (k: string) => lineOfKey(text, k);
  if (h === null || typeof h !== 'object' || Array.isArray(h)) fail(file, hl, 'the task declaration must be a JSON object');
  for (const k of Object.keys(h)) if (!HEADER_KEYS.has(k)) fail(file, at(k), `unknown task field "${k}" (known: ${[...HEADER_KEYS].join(', ')})`);
  if (typeof h.task !== 'string' || h.task === '') fail(file, at('task'), 'missing field "task" (the task\'s name)');
  const outputType = h.output_type as OutputType;
  if (!(typeof outputType === 'string' && outputType in METRICS)) {
    fail(file, at('output_type'), `"output_type" must be one of ${Object.keys(METRICS).join(', ')}, got ${quoteJson(h.output_type)}`);
  }
  const intField = (key: string, dflt: number, min: number): number => {
    const v = h[key];
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) fail(file, at(key), `"${key}" must be an integer >= ${min}, got ${quoteJson(v)}`);
    return v;
  };
  let metrics = [...DEFAULT_METRICS[outputType]];
  if (h.metric_list !== undefined) {
    if (!Array.isArray(h.metric_list) || h.metric_list.length === 0) fail(file, at('metric_list'), '"metric_list" must be a non-empty list of metric names');
    metrics = h.metric_list.map((m) => {
      const name = typeof m === 'string' ? m : m && typeof m === 'object' ? (m as { metric?: unknown }).metric : undefined;
      if (typeof name !== 'string' || !METRICS[outputType].includes(name)) {
        fail(file, at('metric_list'), `metric ${quoteJson(m)} is not one of ${outputType}'s: ${METRICS[outputType].join(', ')}`);
      }
      return name;
    });
  }
  const gk = (h.generation_kwargs ?? {}) as Record<string, unknown>;
  if (typeof gk !== 'object' || gk === null || Array.isArray(gk)) fail(file, at('generation_kwargs'), '"generation_kwargs" must be an object');
  for (const k of Object.keys(gk)) if (k !== 'until' && k !== 'max_gen_toks' && k !== 'do_sample' && k !== 'temperature') fail(file, at('generation_kwargs'), `unknown generation_kwargs field "${k}" (known: until, max_gen_toks)`);
  if ((gk.do_sample !== undefined && gk.do_sample !== false) || (gk.temperature !== undefined && gk.temperature !== 0)) {
    fail(file, at('generation_kwargs'), 'generation is greedy: do_sample must be false and temperature 0');
  }
  const fewshotDelimiter = str(h, 'fewshot_delimiter', '\n\n', at, file);
  let until = [fewshotDelimiter];
  if (gk.until !== undefined) {
    const u = typeof gk.until === 'string' ? [gk.until] : gk.until;
    if (!Array.isArray(u) || !u.every((s) => typeof s === 'string' && s.length > 0)) fail(file, at('generation_kwargs'), '"until" must be a non-empty string or a list of them');
    until = u as string[];
  }
  const maxGenToks = gk.max_gen_toks === undefined ? 32 : gk.max_gen_toks;
  if (typeof maxGenToks !== 'number' || !Number.isInteger(maxGenToks) || maxGenToks < 1) fail(file, at('generation_kwargs'), `"max_gen_toks" must be a positive integer, got ${quoteJson(maxGenToks)}`);
  const spec: TaskSpec = {
    name: h.task as string, file, outputType,
    description: str(h, 'description', '', at, file),
    targetDelimiter: str(h, 'target_delimiter', ' ', at, file),
    fewshotDelimiter, metrics,
    numFewshot: intField('num_fewshot', 0, 0),
    fewshotSeed: intField('fewshot_seed', 1234, 0),
    until, maxGenToks,
    unconditionalContext: str(h, 'unconditional_context', 'Answer:', at, file),
    stride: h.rolling_stride === undefined ? null : intField('rolling_stride', 1, 1),
  };

  // templates
  const textT = template(h, 'doc_to_text', at, file) ?? (outputType === 'loglikelihood_rolling' ? parseTemplate('{{text}}') : null);
  if (!textT) fail(file, at('doc_to_text'), 'missing field "doc_to_text" (the prompt template, e.g. "Question: {{question}}\\nAnswer:")');
  const targetT = template(h, 'doc_to_target', at, file);
  if (!targetT && outputType !== 'loglikelihood_rolling') fail(file, at('doc_to_target'), 'missing field "doc_to_target" (the gold answer: a template such as "{{label}}")');
  let choiceT: Template | string[] | null = null;
  if (outputType === 'multiple_choice') {
    const c = h.doc_to_choice;
    if (c === undefined) fail(file, at('doc_to_choice'), 'missing field "doc_to_choice" (a template giving the list of choices, e.g. "{{choices}}", or a list)');
    if (Array.isArray(c)) {
      if (c.length === 0) fail(file, at('doc_to_choice'), 'empty choices: "doc_to_choice" is an empty list');
      if (!c.every((s) => typeof s === 'string')) fail(file, at('doc_to_choice'), '"doc_to_choice" must be a list of strings');
      choiceT = c as string[];
    } else choiceT = template(h, 'doc_to_choice', at, file);
  } else if (h.doc_to_choice !== undefined) fail(file, at('doc_to_choice'), `"doc_to_choice" is for multiple_choice tasks, not ${outputType}`);

  // documents, by split
  const testSplit = str(h, 'test_split', 'test', at, file);
  const fewshotSplit = str(h, 'fewshot_split', 'train', at, file);
  const bySplit = new Map<string, Located[]>();
  const add = (split: string, d: Located) => {
    if (!bySplit.has(split)) bySplit.set(split, []);
    bySplit.get(split)!.push(d);
  };
  for (const d of inline) {
    const v = d.value as Record<string, unknown>;
    const split = v && typeof v === 'object' && !Array.isArray(v) && 'split' in v ? v.split : testSplit;
    if (typeof split !== 'string') fail(d.file, d.line, `"split" must be a string, got ${quoteJson(split)}`);
    add(split, d);
  }
  if (h.data_files !== undefined) {
    const df = h.data_files as Record<string, unknown>;
    if (df === null || typeof df !== 'object' || Array.isArray(df)) fail(file, at('data_files'), '"data_files" must map split names to files: {"test": "docs.jsonl", "train": "examples.jsonl"}');
    for (const [split, v] of Object.entries(df)) {
      const specs = typeof v === 'string' ? [v] : v;
      if (!Array.isArray(specs) || !specs.every((s) => typeof s === 'string')) fail(file, at('data_files'), `data_files.${split} must be a path or a list of paths`);
      for (const s of specs as string[]) for (const f of expandDataPath(s, file, at('data_files'))) for (const d of readDocs(f)) add(split, d);
    }
  }
  const render = (d: Located, id: number): TaskDoc => {
    const doc = d.value;
    if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) fail(d.file, d.line, `a document must be a JSON object, got ${quoteJson(doc)}`);
    try {
      const out: TaskDoc = { id, file: d.file, line: d.line, text: renderText(textT, doc) };
      if (outputType === 'loglikelihood_rolling' && out.text.length === 0) throw new TemplateError('empty text');
      if (outputType === 'multiple_choice') {
        const choices = Array.isArray(choiceT) ? choiceT : renderValue(choiceT as Template, doc);
        if (!Array.isArray(choices)) throw new TemplateError(`doc_to_choice gives ${quoteJson(choices)}, not a list`);
        if (choices.length === 0) throw new TemplateError('empty choices');
        choices.forEach((c, i) => {
          if (typeof c !== 'string') throw new TemplateError(`choice ${i} is ${quoteJson(c)}, not a string`);
          if (c.length === 0) throw new TemplateError(`choice ${i} is empty`);
        });
        out.choices = choices as string[];
        const t = renderValue(targetT!, doc);
        let gold: number;
        if (typeof t === 'boolean' && choices.length === 2) gold = t ? 1 : 0; // BoolQ's answer: true/false → ["no", "yes"]
        else if (typeof t === 'number' || (typeof t === 'string' && /^\d+$/.test(t) && !choices.includes(t))) {
          gold = Number(t);
          if (!Number.isInteger(gold) || gold < 0 || gold >= choices.length) throw new TemplateError(`gold index ${quoteJson(t)} is out of range (${choices.length} choices)`);
        } else if (typeof t === 'string') {
          gold = choices.indexOf(t);
          if (gold < 0) throw new TemplateError(`gold answer ${quoteJson(t)} is not one of the choices`);
        } else throw new TemplateError(`doc_to_target gives ${quoteJson(t)}: an index or one of the choices was expected`);
        out.gold = gold;
      } else if (outputType === 'generate_until') {
        const t = renderValue(targetT!, doc);
        const targets = typeof t === 'number' ? [String(t)] : t;
        const list = typeof targets === 'string' ? [targets] : targets;
        if (!Array.isArray(list) || list.length === 0 || !list.every((s) => typeof s === 'string')) {
          throw new TemplateError(`doc_to_target gives ${quoteJson(t)}: a string or a non-empty list of strings (aliases) was expected`);
        }
        out.targets = list as string[];
      }
      return out;
    } catch (e) {
      if (e instanceof TemplateError) fail(d.file, d.line, e.message);
      throw e;
    }
  };
  const test = bySplit.get(testSplit) ?? [];
  if (test.length === 0) fail(file, hl, `no documents in the "${testSplit}" split (put them after the declaration line, or name them in data_files)`);
  const pool = bySplit.get(fewshotSplit);
  return {
    spec,
    docs: test.map(render),
    fewshot: pool && fewshotSplit !== testSplit ? pool.map(render) : null,
  };
}
