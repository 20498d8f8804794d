import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { writeShard, readShardHeader, ShardReader, HEADER_BYTES } from '../src/data/shard.js';
import { prepareData, MANIFEST, type Manifest } from '../src/data/prepare.js';
import { parseRecipe } from '../src/data/recipe.js';
import { openTrainingData } from '../src/data/loader.js';
import { loadTokenizer } from '../src/data/tokenizer.js';
import { ByteTokenizer } from '../src/tokenizer/bytes.js';
import { UserError } from '../src/util/errors.js';
import { makePrepared, root, tmp } from './helpers/data.js';

const bin = join(root, 'bin', 'llama-ts.js');

test('shard round trip: header, document index, uint16 and uint32 tokens', () => {
  const d = tmp();
  for (const vocab of [259, 70000]) {
    const toks = vocab > 65536 ? Uint32Array.from([1, 69999, 5, 2, 1, 7, 2]) : Uint16Array.from([1, 258, 5, 2, 1, 7, 2]);
    const f = join(d, `s${vocab}.bin`);
    writeShard(f, toks, [0, 4, 7], vocab);
    const h = readShardHeader(f);
    assert.deepEqual([h.bytesPerToken, h.tokens, h.docs, h.vocabSize], [vocab > 65536 ? 4 : 2, 7, 2, vocab]);
    const r = new ShardReader(f);
    const out = new Int32Array(7);
    r.read(0, 7, out, 0);
    assert.deepEqual(Array.from(out), Array.from(toks));
    assert.deepEqual(Array.from(r.docStarts()), [0, 4, 7]);
    r.close();
  }
  assert.deepEqual(readdirSync(d).sort(), ['s259.bin', 's70000.bin'], 'no temporary files left');
});

test('corrupt shard headers are one-line user errors, from the reader, the loader and the CLI', async () => {
  const dir = await makePrepared([{ name: 'a', docs: 40, weight: 1 }]);
  const m = JSON.parse(readFileSync(join(dir, MANIFEST), 'utf8')) as Manifest;
  const shard = join(dir, 'a', m.sources[0].train.shards[0].file);
  const good = readFileSync(shard);
  const cases: [Buffer, RegExp][] = [
    [Buffer.concat([Buffer.from('NOTASHRD'), good.subarray(8)]), /bad magic/],
    [(() => { const b = Buffer.from(good); b.writeUInt32LE(9, 8); return b; })(), /unsupported version 9/],
    [(() => { const b = Buffer.from(good); b.writeUInt32LE(3, 12); return b; })(), /bad token width 3/],
    [good.subarray(0, good.length - 10), /header says \d+ tokens in \d+ documents \(\d+ bytes\) but the file has \d+ bytes/],
    [good.subarray(0, 20), /shorter than the 64-byte header/],
  ];
  for (const [bytes, re] of cases) {
    writeFileSync(shard, bytes);
    assert.throws(() => readShardHeader(shard), (e) => e instanceof UserError && re.test(e.message) && e.message.includes(shard), String(re));
    assert.throws(() => openTrainingData(dir, new ByteTokenizer(), 1, 16), re);
    const p = spawnSync(process.execPath, [bin, 'data', 'stats', dir], { encoding: 'utf8' });
    assert.equal(p.status, 2);
    assert.equal(p.stderr.trim().split('\n').length, 1);
    assert.match(p.stderr, re);
  }
  writeFileSync(shard, good);
  const ok = spawnSync(process.execPath, [bin, 'data', 'stats', dir], { encoding: 'utf8' });
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /exact duplicates/);
});

test('prepare: BOS/EOS per document, held-out split, identical shards with 0 or 2 tokenizer workers', async () => {
  const a = await makePrepared([{ name: 'x', docs: 60, weight: 1 }, { name: 'y', docs: 30, weight: 1 }], { workers: 0, shardTokens: 2048 });
  const b = await makePrepared([{ name: 'x', docs: 60, weight: 1 }, { name: 'y', docs: 30, weight: 1 }], { workers: 2, shardTokens: 2048 });
  const m = JSON.parse(readFileSync(join(a, MANIFEST), 'utf8')) as Manifest;
  assert.equal(m.sources[0].train.docs + m.sources[0].heldOut.docs, 60);
  assert.equal(m.sources[0].heldOut.docs, 6, 'every 10th document held out');
  assert.ok(m.sources[0].train.shards.length > 1);
  for (const s of m.sources) {
    for (const split of ['train', 'heldOut'] as const) {
      for (const sh of s[split].shards) {
        const fa = join(a, s.name, sh.file);
        assert.deepEqual(readFileSync(fa), readFileSync(join(b, s.name, sh.file)), sh.file);
        const r = new ShardReader(fa);
        const starts = r.docStarts();
        const toks = new Int32Array(r.header.tokens);
        r.read(0, toks.length, toks, 0);
        for (let i = 0; i + 1 < starts.length; i++) {
          assert.equal(toks[starts[i]], 1, 'BOS first');
          assert.equal(toks[starts[i + 1] - 1], 2, 'EOS last');
        }
        const text = new ByteTokenizer().decode(toks.subarray(starts[0] + 1, starts[1] - 1));
        assert.match(text, new RegExp(`^${s.name} document \\d+\\.\\n`));
        r.close();
      }
    }
  }
  // nothing but the output directory next to it
  assert.deepEqual(readdirSync(dirname(a)).sort(), ['prepared', 'raw']);
});

test('a bad record mid-prepare leaves nothing half-written; existing output needs --force', async () => {
  const d = tmp();
  writeFileSync(join(d, 'good.jsonl'), Array.from({ length: 30 }, (_, i) => JSON.stringify({ text: `good document number ${i} `.repeat(10) })).join('\n'));
  writeFileSync(join(d, 'bad.jsonl'), `${JSON.stringify({ text: 'fine '.repeat(40) })}\n{"text": oops}\n`);
  const recipe = (skip: boolean) => parseRecipe({
    total_tokens: 1e5, on_bad_record: skip ? 'skip' : 'fail', clean: { min_chars: 20 },
    sources: [{ name: 'good', path: 'good.jsonl', format: 'jsonl', weight: 1 }, { name: 'bad', path: 'bad.jsonl', format: 'jsonl', weight: 1 }],
  }, d);
  const out = join(d, 'out');
  await assert.rejects(prepareData({ recipe: recipe(false), out, quiet: true, workers: 2 }), (e) => e instanceof UserError && e.message.startsWith(`${join(d, 'bad.jsonl')}:2: malformed JSON`));
  assert.deepEqual(readdirSync(d).sort(), ['bad.jsonl', 'good.jsonl'], 'no output, no staging directory');
  const r = await prepareData({ recipe: recipe(true), out, quiet: true, workers: 0 });
  assert.deepEqual(r.manifest.sources[1].ingest.badRecords, { 'malformed JSON': 1 });
  await assert.rejects(prepareData({ recipe: recipe(true), out, quiet: true, workers: 0 }), /already holds prepared data: pass --force/);
  await prepareData({ recipe: recipe(true), out, quiet: true, workers: 0, force: true });
  assert.deepEqual(readdirSync(d).sort(), ['bad.jsonl', 'good.jsonl', 'out']);
  // CLI: one-line error, exit 2, nothing written
  writeFileSync(join(d, 'r.json'), JSON.stringify({ total_tokens: 1e5, sources: [{ name: 'bad', path: 'bad.jsonl', format: 'jsonl', weight: 1 }] }));
  const p = spawnSync(process.execPath, [bin, 'data', 'prepare', '--recipe', join(d, 'r.json'), '--out', join(d, 'out2'), '--quiet'], { encoding: 'utf8' });
  assert.equal(p.status, 2);
  assert.match(p.stderr, /bad\.jsonl:2: malformed JSON .*--on-bad-record skip/);
  assert.equal(existsSync(join(d, 'out2')), false);
  const q = spawnSync(process.execPath, [bin, 'data', 'prepare', '--recipe', join(d, 'r.json'), '--out', join(d, 'out2'), '--quiet', '--on-bad-record', 'skip'], { encoding: 'utf8' });
  assert.equal(q.status, 0, q.stderr);
  assert.match(q.stdout, /prepared .*out2: \d[\d,]* training tokens/);
});

test('tokenizer loader: bytes by default, SentencePiece models, clear errors for bad files', async () => {
  assert.equal((await loadTokenizer(undefined)).vocabSize, 259);
  await assert.rejects(loadTokenizer('/nope/t.model'), /tokenizer '\/nope\/t.model' does not exist/);
  await assert.rejects(loadTokenizer('t.json'), /not a SentencePiece \.model file/);
  const d = tmp();
  const f = join(d, 't.model');
  writeFileSync(f, 'x');
  await assert.rejects(loadTokenizer(f), (e) => e instanceof UserError);
  const llama = await loadTokenizer(join(root, 'test', 'fixtures', 'tokenizer', 'llama-spm.model'));
  assert.equal(llama.vocabSize, 32000);
  assert.deepEqual(llama.encode('Hello world'), [15043, 3186]);
  // a prepared dir refuses a tokenizer with another vocabulary
  const dir = await makePrepared([{ name: 'a', docs: 20, weight: 1 }]);
  const other = { vocabSize: 32000, bosId: 1, eosId: 2, encode: () => [], decode: () => '' };
  assert.throws(() => openTrainingData(dir, other, 1, 16), /was prepared with the byte tokenizer \(vocab 259\), not the one given \(vocab 32000\)/);
  assert.equal(HEADER_BYTES, 64);
});
