/**
 * Evaluation throughput: the harness's batched scoring (scoreLoglik: shared context prefill, continuations run
 * together over the KV caches) against its peer, scoring each (context + choice) text on its own with scoreTokens
 * (what `llama-ts score` does), on the bundled commonsense-mc task (32 questions × 4 choices). The two are
 * interleaved (A B A B …) and checked to give the same log-likelihoods. Prints one JSON object.
 *
 *   node dist/bench/eval.js [--preset mini-15m] [--reps 3] [--batch 1,8] [--backend native]
 *
 * Random-init weights with a byte vocabulary (speed does not depend on the values).
 */
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { makeConfig } from '../src/model/config.js';
import { Llama } from '../src/model/llama.js';
import { createBackend } from '../src/kernels/index.js';
import { Decoder } from '../src/inference/generate.js';
import { scoreTokens } from '../src/inference/score.js';
import { ByteTokenizer } from '../src/tokenizer/bytes.js';
import { loadTask, resolveTaskPaths, buildContext, continuationRequest, scoreLoglik } from '../src/eval/index.js';

const { values } = parseArgs({ options: { preset: { type: 'string', default: 'mini-15m' }, reps: { type: 'string', default: '3' }, batch: { type: 'string', default: '1,8' }, backend: { type: 'string' } } });
const tok = new ByteTokenizer();
const config = makeConfig(String(values.preset), { vocabSize: tok.vocabSize });
const backend = createBackend(values.backend);
const model = new Llama(config, backend);
model.init(1);
const dec = new Decoder(model);
const task = loadTask(resolveTaskPaths('commonsense-mc')[0]);
const reqs = task.docs.flatMap((d) => d.choices!.map((c) => continuationRequest(tok, buildContext(task.spec, [], d), ' ' + c, config.maxSeqLen)));
const tokens = reqs.reduce((a, r) => a + r.ids.length - 1, 0);

function peer(): number[] {
  return reqs.map((r) => scoreTokens(dec, r.ids).logprobs.slice(r.from - 1).reduce((a, b) => a + b, 0));
}
const batches = String(values.batch).split(',').map(Number);
const runs: Record<string, number[]> = { peer_scoreTokens: [] };
for (const b of batches) runs[`scoreLoglik_batch${b}`] = [];
let maxDiff = 0;
for (let rep = 0; rep < Number(values.reps); rep++) {
  let t = performance.now();
  const want = peer();
  runs.peer_scoreTokens.push((performance.now() - t) / 1000);
  for (const b of batches) {
    t = performance.now();
    const got = scoreLoglik(dec, reqs, { batch: b });
    runs[`scoreLoglik_batch${b}`].push((performance.now() - t) / 1000);
    got.forEach((g, i) => (maxDiff = Math.max(maxDiff, Math.abs(g.logprob - want[i]) / Math.max(1, Math.abs(want[i])))));
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const flags = readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)?.[1].trim().split(/\s+/).filter((f) => /^(avx|fma|amx)/.test(f)) ?? [];
const out = Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, { median_s: median(v), all_s: v, requests_per_s: reqs.length / median(v) }]));
console.log(JSON.stringify({
  bench: 'eval', task: 'commonsense-mc', requests: reqs.length, tokens_fed_by_peer: tokens, preset: values.preset, backend: backend.name,
  cpu: cpus()[0]?.model ?? 'unknown', cpu_flags: flags, cores: cpus().length, node: process.version, results: out,
  speedup_vs_peer: Object.fromEntries(batches.map((b) => [`batch${b}`, median(runs.peer_scoreTokens) / median(runs[`scoreLoglik_batch${b}`])])),
  max_rel_diff_loglik: maxDiff, note: 'shared machine: timings are noisy; compare numbers from one run',
}, null, 1));
