import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SentencePieceProcessor } from '@agnai/sentencepiece-js';
import { SentencePieceModel, trainBpe, serializeModelProto, parseModelProto, PieceType } from '../src/tokenizer/index.js';
import { brownText } from '../src/data/brown.js';
import { UserError } from '../src/util/errors.js';
import { trainFiles, heldoutFiles, heldoutLines } from '../tools/brown-split.js';

const fx = (f: string) => fileURLToPath(new URL(`../../test/fixtures/tokenizer/${f}`, import.meta.url));
const dec = new TextDecoder('utf-8', { ignoreBOM: true });

const trainText = brownText(trainFiles());
// Same data and settings as tools/make-spm-fixtures.sh used for spm_train.
const ours = new SentencePieceModel(trainBpe({ input: trainText, vocabSize: 2000, splitDigits: true, byteFallback: true }));

test('our BPE vs spm_train on the same corpus and settings: piece overlap and compression', () => {
  const spm = SentencePieceModel.load(fx('spm-bpe2k.model'));
  const a = new Set(ours.proto.pieces.map((p) => p.piece));
  const b = new Set(spm.proto.pieces.map((p) => p.piece));
  let common = 0;
  for (const x of a) if (b.has(x)) common++;
  const overlap = common / b.size;
  let tOurs = 0;
  let tSpm = 0;
  let bytes = 0;
  for (const line of brownText(heldoutFiles()).split('\n')) {
    tOurs += ours.encode(line).length;
    tSpm += spm.encode(line).length;
    bytes += Buffer.byteLength(line);
  }
  const ratio = tOurs / tSpm;
  console.log(JSON.stringify({ overlap, common, tokensPerByteOurs: tOurs / bytes, tokensPerByteSpm: tSpm / bytes, ratio }));
  assert.ok(overlap >= 0.97, `overlap ${overlap}`);
  assert.ok(Math.abs(ratio - 1) <= 0.01, `compression ratio ${ratio}`);
});

test('a model we train loads in SentencePiece (WASM) and both give identical ids', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tok-'));
  const path = join(dir, 'ours.model');
  writeFileSync(path, serializeModelProto(ours.proto));
  const sp = new SentencePieceProcessor();
  await sp.load(path);
  let n = 0;
  for (const bytes of heldoutLines(300)) {
    if (bytes.includes(0)) continue; // the WASM binding takes C strings
    const text = dec.decode(bytes);
    if (text.includes('\ufffd')) continue; // the binding re-encodes JS strings; invalid UTF-8 is covered by the spm_encode fixture
    assert.deepEqual(ours.encode(text), Array.from(sp.encodeIds(text)), JSON.stringify(text));
    n++;
  }
  assert.ok(n > 300);
});

test('identity normalizer, user-defined and control symbols, whitespace-only pieces: SentencePiece agrees', async () => {
  const text = trainText.split('\n').slice(0, 3000).join('\n') + '\n' + 'x  y   z    w\n'.repeat(50);
  const proto = trainBpe({
    input: text,
    vocabSize: 600,
    normalization: 'identity',
    removeExtraWhitespaces: false,
    userDefinedSymbols: ['<sep>', 'Fulton'],
    controlSymbols: ['<cls>'],
    allowWhitespaceOnlyPieces: true,
    byteFallback: true,
    splitDigits: true,
    maxPieceLength: 8,
  });
  const m = new SentencePieceModel(proto);
  assert.equal(m.pieceType(3), PieceType.CONTROL);
  assert.equal(m.idToPiece(3), '<cls>');
  assert.equal(m.idToPiece(4), '<sep>');
  assert.ok(proto.pieces.some((p) => /^\u2581{2,}$/.test(p.piece)), 'whitespace-only piece learned');
  assert.ok(proto.pieces.every((p) => p.type !== PieceType.NORMAL || [...p.piece].length <= 8));
  const dir = mkdtempSync(join(tmpdir(), 'tok-'));
  const path = join(dir, 'id.model');
  writeFileSync(path, serializeModelProto(proto));
  const sp = new SentencePieceProcessor();
  await sp.load(path);
  for (const s of ['The Fulton<sep>County  said', '  two  leading', 'a<cls>b', 'x  y   z    w', 'trailing   ', 'Ünïcödé 😀 1999']) {
    assert.deepEqual(m.encode(s), Array.from(sp.encodeIds(s)), JSON.stringify(s));
    assert.equal(m.decode(m.encode(s)), s);
  }
});

test('trainer: bad input gives UserError', () => {
  const bad = (f: () => unknown, re: RegExp) => assert.throws(f, (e: unknown) => e instanceof UserError && re.test((e as Error).message));
  bad(() => trainBpe({ input: '', vocabSize: 100 }), /empty/);
  bad(() => trainBpe({ input: '\n\n   \n', vocabSize: 100 }), /empty/);
  bad(() => trainBpe({ input: 'abc abc abd\n', vocabSize: 1000 }), /too large/);
  bad(() => trainBpe({ input: 'abcdefghij\n', vocabSize: 5 }), /smaller than/);
  bad(() => trainBpe({ input: 'abc', vocabSize: 0 }), /positive/);
  bad(() => trainBpe({ input: 'abc', vocabSize: 100, characterCoverage: 0.5 }), /coverage/);
  // Multi-megabyte lines are skipped (max sentence length), NUL bytes and lone surrogates are harmless.
  const big = 'x'.repeat(5_000_000);
  const p = trainBpe({ input: [big, 'hello world\0 hello \ud800 world', 'hello there'], vocabSize: 25, byteFallback: false, normalization: 'identity' });
  const m = new SentencePieceModel(p);
  assert.equal(m.vocabSize, 25);
  assert.equal(m.decode(m.encode('hello world')), 'hello world');
  // The encoder copes with a multi-megabyte line too.
  assert.equal(m.encode('ab '.repeat(400_000)).length > 0, true);
  // Sampling keeps `inputSentenceSize` sentences.
  const s = trainBpe({ input: trainText, vocabSize: 300, inputSentenceSize: 500, normalization: 'identity' });
  assert.equal(parseModelProto(serializeModelProto(s)).pieces.length, 300);
});
