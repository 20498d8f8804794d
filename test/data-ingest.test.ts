import v8 from 'node:v8';
import vm from 'node:vm';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { ingest, newCounters, type IngestSpec } from '../src/data/ingest.js';
import { UserError } from '../src/util/errors.js';
import { fixtures, tmp } from './helpers/data.js';

async function docs(spec: Partial<IngestSpec> & { paths: string[] }) {
  const c = newCounters();
  const out: { text: string; where: string }[] = [];
  for await (const d of ingest({ name: 't', format: 'jsonl', ...spec }, c)) out.push(d);
  return { docs: out, counters: c };
}

const plain = () => readFileSync(join(fixtures, 'docs.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).text as string);

test('JSONL, .gz and .zst give the same documents', async () => {
  const want = plain();
  assert.equal(want.length, 5);
  for (const f of ['docs.jsonl', 'docs.jsonl.gz', 'docs.jsonl.zst']) {
    const r = await docs({ paths: [join(fixtures, f)] });
    assert.deepEqual(r.docs.map((d) => d.text), want, f);
    assert.match(r.docs[2].where, new RegExp(`${f.replace(/\./g, '\\.')}:3$`));
  }
});

test('Parquet: text column read row group by row group; a null text is a bad record', async () => {
  const { parquetMetadataAsync, asyncBufferFromFile } = await import('hyparquet');
  const meta = await parquetMetadataAsync(await asyncBufferFromFile(join(fixtures, 'docs.parquet')));
  assert.equal(meta.row_groups.length, 3);
  await assert.rejects(docs({ paths: [join(fixtures, 'docs.parquet')], format: 'parquet' }), (e) => e instanceof UserError && /docs\.parquet#row9: "text" is null/.test(e.message));
  const r = await docs({ paths: [join(fixtures, 'docs.parquet')], format: 'parquet', onBadRecord: 'skip' });
  assert.equal(r.docs.length, 11);
  assert.match(r.docs[0].text, /^Document 0 is about rivers\./);
  assert.match(r.docs[10].text, /^Document 11 is about marshes\./);
  assert.deepEqual(r.counters.badRecords, { 'missing text field': 1 });
  await assert.rejects(docs({ paths: [join(fixtures, 'docs.parquet')], format: 'parquet', textField: 'body' }), /has no column "body" \(columns: id, text\)/);
  const gz = await docs({ paths: [join(fixtures, 'docs-gzip.parquet')], format: 'parquet', onBadRecord: 'skip' });
  assert.deepEqual(gz.docs.map((x) => x.text), r.docs.map((x) => x.text), 'GZIP pages');
  const junk = join(tmp(), 'junk.parquet');
  writeFileSync(junk, 'PAR1 this is not parquet PAR1');
  await assert.rejects(docs({ paths: [junk], format: 'parquet' }), (e) => e instanceof UserError && /is not a readable Parquet file/.test(e.message));
});

test('malformed JSONL: fails with file and line, or is skipped and counted', async () => {
  const d = tmp();
  const f = join(d, 'bad.jsonl');
  writeFileSync(f, '{"text":"one"}\n{"text": "two"\n{"text":"three"}\n\n{"body":"four"}\n{"text":5}\n["x"]\n');
  await assert.rejects(docs({ paths: [f] }), (e) => e instanceof UserError && e.message.startsWith(`${f}:2: malformed JSON`) && /--on-bad-record skip/.test(e.message));
  const r = await docs({ paths: [f], onBadRecord: 'skip' });
  assert.deepEqual(r.docs.map((x) => x.text), ['one', 'three']);
  assert.deepEqual(r.counters.badRecords, { 'malformed JSON': 1, 'missing text field': 3 });
  // the missing field is reported with its line
  writeFileSync(f, '{"text":"one"}\n{"body":"four"}\n');
  await assert.rejects(docs({ paths: [f] }), new RegExp(`${f}:2: no "text" field`));
  // a configurable field
  const r2 = await docs({ paths: [f], textField: 'body', onBadRecord: 'skip' });
  assert.deepEqual(r2.docs.map((x) => x.text), ['four']);
});

test('invalid UTF-8 is reported with file and line (text and JSONL)', async () => {
  const d = tmp();
  const f = join(d, 'bad.txt');
  writeFileSync(f, Buffer.concat([Buffer.from('good line\nsecond \xff'.slice(0, 17)), Buffer.from([0xc3, 0x28]), Buffer.from('\nthird\n')]));
  await assert.rejects(docs({ paths: [f], format: 'text' }), (e) => e instanceof UserError && e.message.startsWith(`${f}:2: invalid UTF-8`));
  const r = await docs({ paths: [f], format: 'text', onBadRecord: 'skip' });
  assert.deepEqual(r.docs.map((x) => x.text), ['good line\nthird']);
  const j = join(d, 'bad.jsonl');
  writeFileSync(j, Buffer.concat([Buffer.from('{"text":"ok"}\n{"text":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}\n')]));
  await assert.rejects(docs({ paths: [j] }), new RegExp(`${j}:2: invalid UTF-8`));
});

test('truncated .gz and .zst fail with a clear message', async () => {
  const d = tmp();
  for (const ext of ['gz', 'zst']) {
    const full = readFileSync(join(fixtures, `docs.jsonl.${ext}`));
    const f = join(d, `cut.jsonl.${ext}`);
    writeFileSync(f, full.subarray(0, Math.floor(full.length / 2)));
    await assert.rejects(docs({ paths: [f] }), (e) => e instanceof UserError && e.message.includes(`'${f}' is a truncated or corrupt ${ext === 'gz' ? 'gzip' : 'zstd'} file`));
  }
  // not compressed at all but named .gz
  const g = join(d, 'plain.jsonl.gz');
  writeFileSync(g, '{"text":"x"}\n');
  await assert.rejects(docs({ paths: [g] }), /truncated or corrupt gzip/);
});

test('text: one document per file, blank-line and custom separators; directories walked in order', async () => {
  const d = tmp();
  writeFileSync(join(d, 'b.txt'), 'B1\n\n\nB2 line one\nB2 line two\n');
  writeFileSync(join(d, 'a.txt'), 'A1\r\nstill A1\r\n');
  writeFileSync(join(d, 'c.md.gz'), gzipSync('C1\n<|endoftext|>\nC2\n'));
  writeFileSync(join(d, 'skip.bin'), 'ignored');
  const one = await docs({ paths: [d], format: 'text' });
  assert.deepEqual(one.docs.map((x) => x.text), ['A1\nstill A1', 'B1\n\n\nB2 line one\nB2 line two', 'C1\n<|endoftext|>\nC2']);
  const blank = await docs({ paths: [join(d, 'b.txt')], format: 'text', separator: 'blank-line' });
  assert.deepEqual(blank.docs.map((x) => x.text), ['B1', 'B2 line one\nB2 line two']);
  assert.equal(blank.docs[1].where, `${join(d, 'b.txt')}:4`);
  const custom = await docs({ paths: [join(d, 'c.md.gz')], format: 'text', separator: '<|endoftext|>' });
  assert.deepEqual(custom.docs.map((x) => x.text), ['C1', 'C2']);
  await assert.rejects(docs({ paths: [join(d, 'nope')], format: 'text' }), /path '.*nope' does not exist/);
});

test('ingest memory stays flat on a large compressed file', async () => {
  const d = tmp();
  const f = join(d, 'big.jsonl.gz');
  // 60 MB of JSONL as 60 concatenated gzip members, written without ever holding it in memory
  const member = gzipSync(Buffer.from((JSON.stringify({ text: 'x'.repeat(1000) }) + '\n').repeat(1000)));
  writeFileSync(f, '');
  for (let i = 0; i < 60; i++) appendFileSync(f, member);
  // live memory only: collect garbage before each reading so the numbers do not depend on when V8 chose to
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  const used = () => {
    gc();
    const m = process.memoryUsage();
    return m.heapUsed + m.arrayBuffers;
  };
  const before = used();
  let n = 0;
  let peak = 0;
  for await (const _ of ingest({ name: 'big', format: 'jsonl', paths: [f] }, newCounters())) {
    if (++n % 2000 === 0) peak = Math.max(peak, used() - before);
  }
  assert.equal(n, 60_000);
  assert.ok(peak < 16e6, `heap + buffers grew by ${(peak / 1e6).toFixed(1)} MB while streaming 60 MB`);
});
