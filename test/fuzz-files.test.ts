/**
 * Issue 17 acceptance: a bounded, seeded fuzz over every file kind llama-ts reads — checkpoint (state.json,
 * model.safetensors, latest), GGUF, Hugging Face (config.json, safetensors, vocabulary), llama2.c (.bin,
 * tokenizer.bin), SentencePiece .model, prepared shards + manifest, JSONL and Parquet. Each format runs its cases
 * in one child process (test/helpers/fuzz-worker.ts) under a heap cap and a time limit; every case must end in a
 * result or a UserError of one line, none may take longer than PER_CASE_MS. A few CLI runs check the printed form.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeConfig } from '../src/model/config.js';
import { writeLlamaGguf } from '../src/io/gguf-llama.js';
import { byteVocab } from '../src/tokenizer/vocab.js';
import { Rng } from '../src/util/rng.js';
import { peakedModel } from './helpers/models.js';
import { runCli } from './helpers/cli.js';

const worker = fileURLToPath(new URL('./helpers/fuzz-worker.js', import.meta.url));
const PER_CASE_MS = 5000;
const HEAP_MB = 512;

const PLAN: [string, number][] = [
  ['ckpt', 300], ['gguf', 300], ['hf', 300], ['llama2c', 300], ['model', 300], ['shards', 300], ['jsonl', 300], ['parquet', 150],
];

for (const [format, cases] of PLAN) {
  test(`fuzz ${format}: ${cases} seeded mutations end in a result or a one-line UserError, each within ${PER_CASE_MS} ms, heap ≤ ${HEAP_MB} MB`, () => {
    const r = spawnSync(process.execPath, [`--max-old-space-size=${HEAP_MB}`, worker, format, '17', String(cases)], {
      encoding: 'utf8', timeout: 60_000, env: { ...process.env, LLAMA_TS_PARQUET_TIMEOUT_MS: '2000' }, maxBuffer: 64 << 20,
    });
    const lines = r.stdout.trimEnd().split('\n');
    const last = lines[lines.length - 1] ?? '';
    assert.ok(r.status === 0 && last.startsWith('{'), `${format}: worker ended with status ${r.status} signal ${r.signal} during ${lines.filter((l) => l.startsWith('case ')).pop()}: ${r.stderr.slice(-2000)}`);
    const s = JSON.parse(last) as { ok: number; userErrors: number; failures: string[]; slowestMs: number };
    assert.deepEqual(s.failures, [], `${format}: ${s.failures.slice(0, 3).join('\n')}`);
    assert.ok(s.slowestMs < PER_CASE_MS, `${format}: slowest case ${s.slowestMs} ms`);
    assert.ok(s.userErrors > 0, `${format}: no mutation was rejected (${s.ok} ok)`);
    console.log(JSON.stringify({ format, cases, ok: s.ok, userErrors: s.userErrors, slowestMs: s.slowestMs }));
  });
}

test('fuzz CLI sample: corrupt GGUFs through `score` print one `llama-ts: error:` line (exit 2) or a result, never a stack', () => {
  const dir = mkdtempSync(join(tmpdir(), 'llama-ts-fuzzcli-'));
  const good = join(dir, 'good.gguf');
  writeLlamaGguf(good, peakedModel(makeConfig({ dim: 32, nLayers: 1, nHeads: 4, vocabSize: 259, multipleOf: 16, maxSeqLen: 32 })), byteVocab(259), 'f32');
  const bytes = readFileSync(good);
  const rng = new Rng(5);
  for (let i = 0; i < 6; i++) {
    const b = Buffer.from(bytes);
    b.fill(0xff, rng.int(b.length), rng.int(b.length));
    const p = join(dir, `m${i}.gguf`);
    writeFileSync(p, b);
    const r = runCli(['score', '--model', p, '--text', 'hello there']);
    if (r.code === 0) continue;
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /^llama-ts: error: /);
  }
});
