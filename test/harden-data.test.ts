/**
 * Issue 17, data files: 3 a corrupt Parquet file (7 bytes deleted from docs-gzip.parquet) fails at once instead of
 * spinning; a decode that runs past its time limit is stopped; a killed prepare's staging directory is removed by
 * the next prepare. 5 long documents: BPE in bounded spans (linear time), documents capped.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ingest, newCounters, MAX_DOC_CHARS, type IngestSpec } from '../src/data/ingest.js';
import { prepareData, removeStaleStaging } from '../src/data/prepare.js';
import { parseRecipe } from '../src/data/recipe.js';
import { SentencePieceModel, MAX_SPAN } from '../src/tokenizer/model.js';
import { UserError } from '../src/util/errors.js';
import { fixtures, root, tmp } from './helpers/data.js';

async function docs(spec: Partial<IngestSpec> & { paths: string[] }) {
  const c = newCounters();
  const out: { text: string; where: string }[] = [];
  for await (const d of ingest({ name: 't', format: 'jsonl', ...spec }, c)) out.push(d);
  return { docs: out, counters: c };
}

const oneLine = (e: unknown) => e instanceof UserError && !/[\n\r\x1b]/.test(e.message);

test('3: Parquet with 7 bytes deleted fails at once; a decode past its time limit is stopped; stale staging dirs are removed', async () => {
  const d = tmp();
  const good = readFileSync(join(fixtures, 'docs-gzip.parquet'));
  const cut = join(d, 'cut.parquet');
  writeFileSync(cut, Buffer.concat([good.subarray(0, 325), good.subarray(332)]));
  let t0 = performance.now();
  await assert.rejects(docs({ paths: [cut], format: 'parquet' }), (e) => oneLine(e) && /cut\.parquet' is not a readable Parquet file \(row group 2 column 'text' spans bytes 567\.\.748, outside the data region/.test((e as Error).message));
  assert.ok(performance.now() - t0 < 5000);
  // the same shift with the size kept passes the structure check and makes hyparquet loop: the time limit stops it
  const shifted = join(d, 'shifted.parquet');
  writeFileSync(shifted, Buffer.concat([good.subarray(0, 325), good.subarray(332, 508), Buffer.alloc(7), good.subarray(508)]));
  process.env.LLAMA_TS_PARQUET_TIMEOUT_MS = '1500';
  try {
    t0 = performance.now();
    await assert.rejects(docs({ paths: [shifted], format: 'parquet' }), (e) => oneLine(e) && /decoding rows 4\.\.8 took longer than 1\.5 s/.test((e as Error).message));
    assert.ok(performance.now() - t0 < 8000);
  } finally {
    delete process.env.LLAMA_TS_PARQUET_TIMEOUT_MS;
  }
  // the good files still read
  assert.equal((await docs({ paths: [join(fixtures, 'docs-gzip.parquet')], format: 'parquet', onBadRecord: 'skip' })).docs.length, 11);

  // a prepare killed with -9 leaves .out.partial-<pid>; the next prepare removes it (the process is gone)
  const dead = spawnSync(process.execPath, ['-e', 'process.pid'], {}).pid!;
  const out = join(d, 'out');
  mkdirSync(join(d, `.out.partial-${dead}`, 'src'), { recursive: true });
  mkdirSync(join(d, `.out.old-${dead}`));
  mkdirSync(join(d, `.out.partial-${process.pid}x`)); // not ours to judge
  writeFileSync(join(d, 'a.jsonl'), Array.from({ length: 5 }, (_, i) => JSON.stringify({ text: `document ${i} `.repeat(20) })).join('\n'));
  const recipe = parseRecipe({ total_tokens: 1e4, sources: [{ name: 'a', path: 'a.jsonl', format: 'jsonl', weight: 1 }] }, d);
  await prepareData({ recipe, out, quiet: true, workers: 0 });
  assert.deepEqual(readdirSync(d).filter((f) => f.startsWith('.')).sort(), [`.out.partial-${process.pid}x`]);
  assert.deepEqual(removeStaleStaging(out), []);
  // the CLI on the corrupt file: one line, exit 2, no staging left
  writeFileSync(join(d, 'r.json'), JSON.stringify({ total_tokens: 1e4, sources: [{ name: 'p', path: 'cut.parquet', format: 'parquet', weight: 1 }] }));
  const p = spawnSync(process.execPath, [join(root, 'bin', 'llama-ts.js'), 'data', 'prepare', '--recipe', join(d, 'r.json'), '--out', join(d, 'out2'), '--quiet'], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(p.status, 2, p.stderr);
  assert.equal(p.stderr.trimEnd().split('\n').length, 1);
  assert.ok(!existsSync(join(d, 'out2')));
  assert.equal(readdirSync(d).filter((f) => f.startsWith('.out2')).length, 0);
});

test('5: long inputs — BPE works in bounded spans (lossless, linear time), over-long documents are bad records', async () => {
  const m = SentencePieceModel.load(join(fixtures, '..', 'tokenizer', 'spm-bpe2k.model'));
  let x = 7;
  const word = (n: number) => Array.from({ length: n }, () => ((x = (x * 1103515245 + 12345) & 0x7fffffff), 'abcdefghijklmnopqrstuvwxyz0123456789'[x % 36])).join('');
  // a word longer than MAX_SPAN is encoded in consecutive spans: still lossless
  const long = word(3 * MAX_SPAN + 100);
  const ids = m.encode(long);
  assert.equal(m.decode(ids), long);
  const time = (s: string) => { const t = performance.now(); m.encode(s); return performance.now() - t; };
  const small = word(1 << 18);
  const big = word(1 << 21);
  time(small);
  const ratio = time(big) / time(small);
  assert.ok(ratio < 20, `8× the input took ${ratio.toFixed(1)}× the time`);

  // documents above MAX_DOC_CHARS: a bad record (fail names the line; skip counts it), memory bounded
  const d = tmp();
  const f = join(d, 'big.jsonl');
  writeFileSync(f, `${JSON.stringify({ text: 'short document' })}\n${JSON.stringify({ text: 'y'.repeat(MAX_DOC_CHARS + 1) })}\n${JSON.stringify({ text: 'last' })}\n`);
  await assert.rejects(docs({ paths: [f] }), (e) => oneLine(e) && /big\.jsonl:2: document of 16777217 characters is longer than 16777216/.test((e as Error).message));
  const r = await docs({ paths: [f], onBadRecord: 'skip' });
  assert.deepEqual(r.docs.map((x) => x.text), ['short document', 'last']);
  assert.deepEqual(r.counters.badRecords, { 'document too long': 1 });
  const t = join(d, 'big.txt');
  writeFileSync(t, `${'z'.repeat(1 << 20)}\n`.repeat(17));
  const rt = await docs({ paths: [t], format: 'text', onBadRecord: 'skip' });
  assert.deepEqual(rt.counters.badRecords, { 'document too long': 1 });
});
