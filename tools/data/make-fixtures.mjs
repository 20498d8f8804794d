#!/usr/bin/env node
/**
 * Regenerates the small data-pipeline test fixtures in test/fixtures/data/:
 *   docs.parquet     3 row groups (rowGroupSize 4), SNAPPY (hyparquet-writer's default codec), columns id (INT32)
 *                    and text (STRING, nullable: row 9 is null); written with hyparquet-writer (devDependency),
 *                    since pyarrow is not available here.
 *   docs-gzip.parquet  the same table with GZIP-compressed pages.
 *   docs.jsonl.zst   5 JSONL documents compressed with the zstd command-line tool (Debian package zstd),
 *                    because fzstd, the runtime dependency, only decompresses.
 *   docs.jsonl.gz    the same documents, gzip (node:zlib).
 * The texts are written here, by the project (MIT).
 *
 *   node tools/data/make-fixtures.mjs
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import { parquetWriteBuffer } from 'hyparquet-writer';

const dir = new URL('../../test/fixtures/data/', import.meta.url).pathname;
mkdirSync(dir, { recursive: true });

const topics = ['rivers', 'mountains', 'forests', 'deserts', 'oceans', 'islands', 'valleys', 'glaciers', 'lakes', 'plains', 'canyons', 'marshes'];
export const parquetTexts = topics.map((t, i) =>
  i === 9 ? null : `Document ${i} is about ${t}. The ${t} of the world are varied and beautiful, and people have written about them for centuries.`);
const buf = parquetWriteBuffer({
  columnData: [
    { name: 'id', data: Int32Array.from(topics, (_, i) => i), type: 'INT32' },
    { name: 'text', data: parquetTexts, type: 'STRING', nullable: true },
  ],
  rowGroupSize: 4,
});
writeFileSync(dir + 'docs.parquet', Buffer.from(buf));
// the same table with GZIP pages (decoded at run time by node:zlib through hyparquet's compressors hook)
const gz = parquetWriteBuffer({
  columnData: [
    { name: 'id', data: Int32Array.from(topics, (_, i) => i), type: 'INT32' },
    { name: 'text', data: parquetTexts, type: 'STRING', nullable: true },
  ],
  rowGroupSize: 4,
  codec: 'GZIP',
  compressors: { GZIP: (input) => new Uint8Array(gzipSync(input)) },
});
writeFileSync(dir + 'docs-gzip.parquet', Buffer.from(gz));

const docs = [
  'The first compressed document talks about the weather in spring, when the rain comes and the gardens turn green again.',
  'A second document describes a small town by the sea, its harbour, its fishing boats and the lighthouse on the hill.',
  'The third document is a short note on bread: flour, water, salt and yeast, kneaded and left to rise overnight.',
  'Document four explains how a bicycle works, from the pedals and the chain to the gears and the brakes.',
  'The last document recalls a long walk through the countryside on an autumn afternoon, under a pale sky.',
];
const jsonl = docs.map((text, i) => JSON.stringify({ id: i, text })).join('\n') + '\n';
writeFileSync(dir + 'docs.jsonl', jsonl);
writeFileSync(dir + 'docs.jsonl.gz', gzipSync(Buffer.from(jsonl), { level: 9 }));
execFileSync('zstd', ['-q', '-f', '-19', '--no-progress', dir + 'docs.jsonl', '-o', dir + 'docs.jsonl.zst']);
console.log(`wrote ${dir}docs.parquet, docs.jsonl(.gz|.zst)`);
