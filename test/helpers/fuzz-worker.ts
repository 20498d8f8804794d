/**
 * One format's fuzz cases, run in this process (spawned by test/fuzz-files.test.ts under a heap cap and a time
 * limit). Builds a small valid file, then for each seeded mutation calls the library's reader on it: the case
 * passes when it returns or throws a UserError whose message is one line. Prints `case <i>` before each case (so
 * the parent can name the one that hung or ran out of memory) and a JSON summary last.
 * Usage: node fuzz-worker.js <format> <seed> <cases>
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeConfig } from '../../src/model/config.js';
import { createRefBackend } from '../../src/kernels/ref.js';
import { loadAnyModel, saveModelAs, type ModelFormat } from '../../src/io/formats.js';
import { writeLlamaGguf } from '../../src/io/gguf-llama.js';
import { SentencePieceModel } from '../../src/tokenizer/model.js';
import { ingest, newCounters, type IngestSpec } from '../../src/data/ingest.js';
import { openTrainingData } from '../../src/data/loader.js';
import { prepareData } from '../../src/data/prepare.js';
import { parseRecipe } from '../../src/data/recipe.js';
import { ByteTokenizer } from '../../src/tokenizer/bytes.js';
import { byteVocab } from '../../src/tokenizer/vocab.js';
import { UserError } from '../../src/util/errors.js';
import { Rng } from '../../src/util/rng.js';
import { peakedModel } from './models.js';
import { fixtures } from './data.js';

const [format, seedArg, casesArg] = process.argv.slice(2);
// node --test dist/test/ runs every file under it: without arguments this is not a test and does nothing
if (!format) process.exit(0);
const rng = new Rng(Number(seedArg));
const cases = Number(casesArg);
const ref = createRefBackend('f32');
const work = mkdtempSync(join(tmpdir(), `llama-ts-fuzz-${format}-`));
const config = makeConfig({ dim: 32, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 259, multipleOf: 16, maxSeqLen: 32 });

const WEIRD: unknown[] = [0, -1, 1e8, 2 ** 31, 2 ** 32 + 7, 2 ** 53, 2 ** 63, 1e308, -1e308, 0.5, '', 'x', '\u001b[2J', null, true, [], {}, [1, 2], { a: 1 }];

/** One random mutation of a file's bytes (`json`: also structural edits of a JSON document). */
function mutate(b: Buffer, json: boolean): Buffer {
  if (json && rng.int(2) === 0) {
    try {
      const doc = JSON.parse(b.toString('utf8')) as unknown;
      const paths: (string | number)[][] = [];
      const walk = (v: unknown, p: (string | number)[]) => {
        paths.push(p);
        if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, [...p, Array.isArray(v) ? Number(k) : k]);
      };
      walk(doc, []);
      const p = paths[1 + rng.int(paths.length - 1)] ?? [];
      let o = doc as Record<string | number, unknown>;
      for (const k of p.slice(0, -1)) o = o[k] as Record<string | number, unknown>;
      const last = p[p.length - 1];
      if (rng.int(5) === 0) delete o[last];
      else o[last] = WEIRD[rng.int(WEIRD.length)];
      return Buffer.from(JSON.stringify(doc));
    } catch {
      // fall through to a byte mutation
    }
  }
  const out = Buffer.from(b);
  const at = rng.int(Math.max(1, b.length));
  switch (rng.int(6)) {
    case 0: for (let k = 1 + rng.int(4); k > 0; k--) out[rng.int(out.length)] = rng.int(256); return out;
    case 1: return out.fill(0xff, at, Math.min(out.length, at + 4 + rng.int(64)));
    case 2: return out.subarray(0, at);
    case 3: return Buffer.concat([out.subarray(0, at), Buffer.from(Array.from({ length: 1 + rng.int(64) }, () => rng.int(256))), out.subarray(at)]);
    case 4: return Buffer.concat([out.subarray(0, at), out.subarray(Math.min(out.length, at + 1 + rng.int(16)))]);
    default: { const v = rng.int(4) === 0 ? 0xffffffff : rng.int(2) === 0 ? 0x7fffffff : rng.int(1 << 20); if (at + 4 <= out.length) out.writeUInt32LE(v, at - (at % 4)); return out; }
  }
}

interface Target {
  /** Files that may be mutated (one per case), relative to the case directory. */
  files: string[];
  json: (f: string) => boolean;
  run: (dir: string) => Promise<unknown> | unknown;
}

async function setup(): Promise<{ base: string; t: Target }> {
  const base = join(work, 'base');
  mkdirSync(base);
  const model = peakedModel(config);
  const load = (p: string, f: ModelFormat) => loadAnyModel(p, ref, f);
  switch (format) {
    case 'ckpt': {
      const ck = join(base, 'run', 'checkpoints', 'step-00000001');
      saveModelAs('ckpt', ck, model, null);
      writeFileSync(join(base, 'run', 'checkpoints', 'latest'), 'step-00000001\n');
      return { base, t: { files: ['run/checkpoints/step-00000001/state.json', 'run/checkpoints/step-00000001/model.safetensors', 'run/checkpoints/latest'], json: (f) => f.endsWith('.json'), run: (d) => load(join(d, 'run'), 'ckpt') } };
    }
    case 'gguf':
      writeLlamaGguf(join(base, 'm.gguf'), model, byteVocab(259), rng.int(2) ? 'q8_0' : 'f32');
      return { base, t: { files: ['m.gguf'], json: () => false, run: (d) => load(join(d, 'm.gguf'), 'gguf') } };
    case 'hf':
      saveModelAs('hf', join(base, 'hf'), model, null);
      return { base, t: { files: ['hf/config.json', 'hf/model.safetensors', 'hf/llama-ts-vocab.json'], json: (f) => f.endsWith('.json'), run: (d) => load(join(d, 'hf'), 'hf') } };
    case 'llama2c':
      saveModelAs('llama2c', join(base, 'm.bin'), makeLlama2cModel(), null);
      return { base, t: { files: ['m.bin', 'tokenizer.bin'], json: () => false, run: (d) => load(join(d, 'm.bin'), 'llama2c') } };
    case 'model':
      cpSync(join(fixtures, '..', 'tokenizer', 'spm-bpe2k.model'), join(base, 't.model'));
      return { base, t: { files: ['t.model'], json: () => false, run: (d) => { const m = SentencePieceModel.load(join(d, 't.model')); return m.decode(m.encode('Hello world, a fuzzed tokenizer 123 ünï.')); } } };
    case 'shards': {
      writeFileSync(join(base, 'a.txt'), Array.from({ length: 40 }, (_, i) => `document ${i} ` + 'some words here and there '.repeat(8)).join('\n\n'));
      const recipe = parseRecipe({ total_tokens: 1e4, held_out_fraction: 0.2, shard_tokens: 2048, sources: [{ name: 'a', path: 'a.txt', format: 'text', separator: 'blank-line', weight: 1 }] }, base);
      await prepareData({ recipe, out: join(base, 'p'), quiet: true, workers: 0 });
      const files = ['p/manifest.json', ...readdirSync(join(base, 'p', 'a')).map((f) => `p/a/${f}`)];
      return { base, t: { files, json: (f) => f.endsWith('.json'), run: (d) => {
        const data = openTrainingData(join(d, 'p'), new ByteTokenizer(), 1, 16, { prefetch: 0 });
        for (let i = 0; i < 3; i++) data.train.next(2, 16);
        return data.trainTokens;
      } } };
    }
    case 'jsonl':
      cpSync(join(fixtures, 'docs.jsonl'), join(base, 'd.jsonl'));
      return { base, t: { files: ['d.jsonl'], json: () => false, run: (d) => drain({ name: 's', format: 'jsonl', paths: [join(d, 'd.jsonl')], onBadRecord: rng.int(2) ? 'skip' : 'fail' }) } };
    case 'parquet':
      cpSync(join(fixtures, 'docs-gzip.parquet'), join(base, 'g.parquet'));
      cpSync(join(fixtures, 'docs.parquet'), join(base, 's.parquet'));
      return { base, t: { files: ['g.parquet', 's.parquet'], json: () => false, run: (d) => drain({ name: 's', format: 'parquet', paths: [join(d, 'g.parquet'), join(d, 's.parquet')], onBadRecord: 'skip' }) } };
  }
  throw new Error(`unknown format ${format}`);
}

function makeLlama2cModel() {
  return peakedModel(makeConfig({ ...config, normEps: 1e-5, ropeTheta: 10000 }));
}

async function drain(spec: IngestSpec): Promise<number> {
  let n = 0;
  for await (const d of ingest(spec, newCounters())) n += d.text.length;
  return n;
}

const { base, t } = await setup();
// the unmutated files must read: otherwise every case would be a rejection and prove nothing
await t.run(base);
let ok = 0;
let userErrors = 0;
let slowest = 0;
const failures: string[] = [];
for (let i = 0; i < cases; i++) {
  console.log(`case ${i}`);
  const dir = join(work, `c${i % 2}`);
  rmSync(dir, { recursive: true, force: true });
  cpSync(base, dir, { recursive: true });
  const f = t.files[rng.int(t.files.length)];
  const p = join(dir, f);
  writeFileSync(p, mutate(readFileSync(p), t.json(f)));
  const t0 = performance.now();
  try {
    await t.run(dir);
    ok++;
  } catch (e) {
    if (e instanceof UserError && !/[\n\r]/.test(e.message) && !/\x1b/.test(e.message)) userErrors++;
    else failures.push(`case ${i} (${f}): ${e instanceof UserError ? 'multi-line message' : 'not a UserError'}: ${(e as Error)?.stack ?? String(e)}`);
  }
  slowest = Math.max(slowest, performance.now() - t0);
}
rmSync(work, { recursive: true, force: true });
console.log(JSON.stringify({ format, cases, ok, userErrors, failures, slowestMs: Math.round(slowest) }));
process.exit(0);
