/**
 * Data-pipeline benchmark (prints one JSON object):
 *   prepare: ingest, ingest+clean and the full ingest+clean+tokenize+write of data/recipes/demo.json (byte
 *            tokenizer), in MB/s of input text, with 0 tokenizer workers (one core) and with 2 workers;
 *   loader:  tokens/s delivered by the mixture loader alone (no prefetch, and with a prefetch worker), and beside
 *            a real training step of a small model: the time the step spends waiting in next() vs the step time.
 *
 *   npm run build && node dist/bench/data.js [--quick]
 * Numbers on a shared machine are noisy; run twice.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, availableParallelism, cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadRecipe } from '../src/data/recipe.js';
import { ingest, newCounters } from '../src/data/ingest.js';
import { Cleaner } from '../src/data/clean.js';
import { prepareData } from '../src/data/prepare.js';
import { MixtureSource, mixtureSpec, readManifest } from '../src/data/loader.js';
import { Llama } from '../src/model/llama.js';
import { createBackend } from '../src/kernels/index.js';
import { makeConfig } from '../src/model/config.js';

const quick = process.argv.includes('--quick');
const root = fileURLToPath(new URL('../../', import.meta.url));
const recipe = loadRecipe(join(root, 'data', 'recipes', 'demo.json'));
const work = mkdtempSync(join(tmpdir(), 'llama-ts-bench-data-'));
const mb = (x: number) => Number((x / 1e6).toFixed(3));
const rate = (bytes: number, ms: number) => Number((bytes / 1e6 / (ms / 1000)).toFixed(2));

async function stageRates() {
  let textBytes = 0;
  let diskBytes = 0;
  let t0 = performance.now();
  for (const src of recipe.sources) {
    const c = newCounters();
    for await (const d of ingest(src, c)) textBytes += Buffer.byteLength(d.text);
    diskBytes += c.bytes;
  }
  const ingestMs = performance.now() - t0;
  t0 = performance.now();
  for (const src of recipe.sources) {
    const cl = new Cleaner(src.clean);
    for await (const d of ingest(src, newCounters())) cl.clean(d.text);
  }
  const cleanMs = performance.now() - t0;
  return { textBytes, diskBytes, ingestMs, cleanMs };
}

async function prepareRate(workers: number, textBytes: number) {
  const out = join(work, `prep-${workers}`);
  const r = await prepareData({ recipe, out, workers, quiet: true });
  return { workers, seconds: Number(r.seconds.toFixed(3)), text_MB_per_s: rate(textBytes, r.seconds * 1000), tokens: r.tokens, out };
}

function loaderAlone(dir: string, prefetch: number, batch: number, seq: number, n: number) {
  const src = new MixtureSource(mixtureSpec(dir, readManifest(dir), 'train'), 1, { prefetch });
  src.next(batch, seq); // start-up (worker spawn) not timed
  const t0 = performance.now();
  for (let i = 0; i < n; i++) src.next(batch, seq);
  const ms = performance.now() - t0;
  src.close();
  return { prefetch, batch, seq, batches: n, tokens_per_s: Math.round((n * batch * seq) / (ms / 1000)) };
}

function loaderBesideTraining(dir: string, prefetch: number, steps: number) {
  const config = makeConfig('mini-260k', { vocabSize: 259, maxSeqLen: 256 });
  const batch = 4;
  const seq = 128;
  const model = new Llama(config, createBackend('ref'));
  model.init(1);
  model.ensureGrads();
  const src = new MixtureSource(mixtureSpec(dir, readManifest(dir), 'train'), 1, { prefetch });
  src.next(batch, seq);
  let waitMs = 0;
  let stepMs = 0;
  const waits: number[] = [];
  for (let s = 0; s < steps; s++) {
    const t0 = performance.now();
    const b = src.next(batch, seq);
    const t1 = performance.now();
    model.forward(b.tokens, batch, seq);
    model.loss(b.targets, 1 / (batch * seq));
    model.backward();
    const t2 = performance.now();
    waitMs += t1 - t0;
    waits.push(Number((t1 - t0).toFixed(3)));
    stepMs += t2 - t0;
  }
  src.close();
  return {
    prefetch, model: 'mini-260k (bytes vocab)', batch, seq, steps,
    step_ms: Number((stepMs / steps).toFixed(1)), loader_wait_ms: Number((waitMs / steps).toFixed(3)), loader_wait_ms_per_step: waits,
    loader_share_of_step: Number((waitMs / stepMs).toFixed(5)),
    training_tokens_per_s: Math.round((steps * batch * seq) / (stepMs / 1000)),
    loader_tokens_per_s_during_training: Math.round((steps * batch * seq) / (waitMs / 1000)),
  };
}

async function main() {
  const stages = await stageRates();
  const one = await prepareRate(0, stages.textBytes);
  const two = await prepareRate(2, stages.textBytes);
  const dir = one.out;
  const n = quick ? 200 : 1000;
  const result = {
    bench: 'data',
    machine: { cores: availableParallelism(), cpu: cpus()[0]?.model ?? 'unknown', node: process.version, note: 'shared machine: numbers are noisy' },
    demo_recipe: { sources: recipe.sources.map((s) => s.name), disk_MB: mb(stages.diskBytes), text_MB: mb(stages.textBytes) },
    prepare: {
      ingest_only_text_MB_per_s: rate(stages.textBytes, stages.ingestMs),
      ingest_clean_text_MB_per_s: rate(stages.textBytes, stages.cleanMs),
      full_one_core: { ...one, out: undefined, text_MB_per_s_per_core: one.text_MB_per_s },
      full_two_workers: { ...two, out: undefined, note: 'main thread ingests and cleans; workers tokenize and the main thread writes shards' },
    },
    loader_alone: [loaderAlone(dir, 0, 8, 256, n), loaderAlone(dir, 2, 8, 256, n), loaderAlone(dir, 0, 32, 1024, n / 4)],
    loader_beside_training: [loaderBesideTraining(dir, 0, quick ? 2 : 5), loaderBesideTraining(dir, 2, quick ? 2 : 5)],
  };
  console.log(JSON.stringify(result, null, 1));
  rmSync(work, { recursive: true, force: true });
}

await main();
