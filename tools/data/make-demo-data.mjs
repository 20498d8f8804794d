#!/usr/bin/env node
/**
 * Writes data/demo/node-api-docs.jsonl.gz: the English prose of the Node.js API documentation comments shipped in
 * the npm package @types/node (MIT, Copyright (c) Microsoft Corporation; see data/demo/NOTICE.md). One JSON
 * object per documentation comment of at least 300 characters: {"text": ..., "file": ...}. Code blocks, @tags
 * and link targets are dropped. Deterministic: the same @types/node version gives the same bytes.
 *
 *   node tools/data/make-demo-data.mjs
 */
import { readdirSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { createRequire } from 'node:module';
import { gzipSync } from 'node:zlib';

const require = createRequire(import.meta.url);
const root = dirname(require.resolve('@types/node/package.json'));
const version = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version;
const files = readdirSync(root).filter((f) => f.endsWith('.d.ts')).sort();
const lines = [];
for (const f of files) {
  const src = readFileSync(join(root, f), 'utf8');
  for (const m of src.matchAll(/\/\*\*([\s\S]*?)\*\//g)) {
    let text = m[1].split('\n').map((l) => l.replace(/^\s*\* ?/, '')).join('\n');
    text = text.replace(/```[\s\S]*?```/g, '').replace(/^@.*$/gm, '').replace(/\[([^\]]*)\]\([^)]*\)/g, '$1');
    text = text.replace(/\n{3,}/g, '\n\n').trim();
    if (text.length >= 300) lines.push(JSON.stringify({ text, file: `@types/node@${version}/${f}` }));
  }
}
const out = new URL('../../data/demo/node-api-docs.jsonl.gz', import.meta.url);
mkdirSync(dirname(out.pathname), { recursive: true });
writeFileSync(out, gzipSync(Buffer.from(lines.join('\n') + '\n'), { level: 9 }));
console.log(`${lines.length} documents from @types/node@${version} → ${out.pathname}`);
