import { writeFileSync } from 'node:fs';
import type { Command } from './main.js';
import { parse, int, str } from './args.js';
import { modelOptions, loadModelArg, MODEL_HELP } from './infer-common.js';
import { loadTask, resolveTaskPaths, runTask, checkShots, bundledTaskNames, type TaskResult } from '../eval/index.js';
import { Progress } from '../util/progress.js';
import { UserError } from '../util/errors.js';

const HELP = `usage: llama-ts eval --model PATH --task FILE_OR_DIR [--shots K] [--limit N] [--batch B] [--json] [--out FILE]

Runs evaluation tasks as the LLaMA paper scores them: multiple choice by the log-likelihood of each choice
(acc, acc_norm, acc_answer), closed-book QA by greedy generation and exact match, perplexity over whole documents.
--task    a task file (.jsonl: declaration line, then one document per line; .json: declaration with data_files),
          a directory of task files, a bundled task's name, or 'bundled' for all of them (${bundledTaskNames().join(', ')})
--shots K few-shot examples per prompt, drawn with the task's seed from its example split (default: the task's num_fewshot)
--seed S  seed of the few-shot draw (default: the task's fewshot_seed)
--limit N only the first N documents of each task
--batch B sequences scored or generated together (default 8)
--stride S  perplexity tasks: tokens predicted per window after the first (default: half the model's context)
--json    one JSON object with every task's metrics instead of the table
--out FILE  per-document results, one JSON line per document (with a "task" field)
--quiet   no progress bar
${MODEL_HELP}
The task format and the paper's protocol: docs/EVAL.md.`;

function fmt(x: number): string {
  return Number.isFinite(x) ? (Math.abs(x) >= 1000 ? x.toFixed(1) : x.toFixed(4)) : String(x);
}

/** The human-readable table: one row per task and metric. */
export function resultTable(results: TaskResult[]): string {
  const rows = [['task', 'type', 'n', 'shots', 'metric', 'value', 'stderr']];
  for (const r of results) {
    for (const [m, v] of Object.entries(r.metrics)) {
      rows.push([r.task, r.output_type, String(r.n), String(r.shots), m, fmt(v), m in r.stderr ? `± ${fmt(r.stderr[m])}` : '']);
    }
  }
  const w = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
  return rows.map((row) => row.map((cell, c) => cell.padEnd(w[c])).join('  ').trimEnd()).join('\n');
}

export const command: Command = {
  async run(argv) {
    const { values } = parse(argv, {
      ...modelOptions, task: { type: 'string', short: 't' }, shots: { type: 'string' }, limit: { type: 'string' }, batch: { type: 'string' },
      seed: { type: 'string' }, stride: { type: 'string' }, json: { type: 'boolean' }, out: { type: 'string', short: 'o' }, quiet: { type: 'boolean' },
    });
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    const taskArg = str(values.task);
    if (!taskArg) throw new UserError('--task FILE_OR_DIR is required (a task file, a directory of them, or a bundled task name)');
    const shots = int(values.shots, 'shots', undefined, 0);
    const limit = int(values.limit, 'limit', undefined, 1);
    const batch = int(values.batch, 'batch', 8, 1);
    const seed = int(values.seed, 'seed', undefined, 0);
    const stride = int(values.stride, 'stride', undefined, 1);
    // every task file is read and checked before the model is loaded
    const tasks = resolveTaskPaths(taskArg).map((f) => loadTask(f));
    for (const t of tasks) if (t.spec.outputType !== 'loglikelihood_rolling') checkShots(t, shots ?? t.spec.numFewshot);
    const { model, tokenizer } = loadModelArg(values);
    const results: TaskResult[] = [];
    for (const task of tasks) {
      let bar: Progress | null = null;
      const r = await runTask(model, tokenizer, task, {
        shots, limit, batch, seed, stride,
        onProgress: values.quiet ? undefined : (done, total) => (bar ??= new Progress(total, `eval ${task.spec.name}`)).update(done, ''),
      });
      (bar as Progress | null)?.done();
      results.push(r);
    }
    const out = str(values.out);
    if (out) writeFileSync(out, results.flatMap((r) => r.docs.map((d) => JSON.stringify({ task: r.task, ...d }) + '\n')).join(''));
    if (values.json) {
      console.log(JSON.stringify({ model: str(values.model), results: results.map(({ docs: _docs, ...r }) => r) }));
    } else {
      console.log(resultTable(results));
    }
    return 0;
  },
};
