import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SentencePieceModel, parseModelProto, serializeModelProto, trainBpe, ModelType } from '../src/tokenizer/index.js';
import { UserError } from '../src/util/errors.js';
import { Rng } from '../src/util/rng.js';

const fx = (f: string) => fileURLToPath(new URL(`../../test/fixtures/tokenizer/${f}`, import.meta.url));

test('ModelProto round trip is byte-identical (spm_train model and LLaMA vocab)', () => {
  for (const f of ['spm-bpe2k.model', 'llama-spm.model']) {
    const b = readFileSync(fx(f));
    assert.equal(Buffer.compare(Buffer.from(serializeModelProto(parseModelProto(b))), b), 0, f);
  }
});

test('unknown fields are preserved', () => {
  const p = parseModelProto(readFileSync(fx('spm-bpe2k.model')));
  const extra = Uint8Array.from([0xca, 0x0c, 0x05, 0x61, 0x62, 0x63, 0x64, 0x65]); // field 201, bytes "abcde"
  const bytes = Buffer.concat([Buffer.from(serializeModelProto(p)), extra]);
  const q = parseModelProto(bytes);
  assert.deepEqual(q.$unknown, [extra]);
  assert.equal(Buffer.compare(Buffer.from(serializeModelProto(q)), bytes), 0);
  new SentencePieceModel(q); // still loads
});

test('unigram and other model types: clear "not supported"', () => {
  const p = parseModelProto(readFileSync(fx('spm-bpe2k.model')));
  for (const t of [ModelType.UNIGRAM, ModelType.WORD, ModelType.CHAR]) {
    const q = { ...p, trainerSpec: { ...p.trainerSpec, modelType: t } };
    assert.throws(() => SentencePieceModel.fromBytes(serializeModelProto(q)), (e: unknown) => e instanceof UserError && /not supported/.test((e as Error).message));
  }
  // A model without trainer_spec is UNIGRAM by proto default.
  assert.throws(() => new SentencePieceModel({ pieces: p.pieces }), /unigram models are not supported/);
});

test('corrupt models: empty, garbage, huge lengths, missing <unk>, bad byte pieces', () => {
  const isUser = (e: unknown) => e instanceof UserError;
  assert.throws(() => SentencePieceModel.fromBytes(new Uint8Array(0)), isUser);
  assert.throws(() => SentencePieceModel.fromBytes(Uint8Array.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])), /exceeds/);
  assert.throws(() => SentencePieceModel.fromBytes(Uint8Array.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])), /varint/);
  assert.throws(() => SentencePieceModel.fromBytes(Buffer.from('this is not a model file at all')), isUser);
  assert.throws(() => SentencePieceModel.load('/nonexistent/x.model'), /cannot read/);
  const p = parseModelProto(readFileSync(fx('spm-bpe2k.model')));
  assert.throws(() => new SentencePieceModel({ ...p, pieces: p.pieces.slice(1) }), /<unk> is not defined/);
  assert.throws(() => new SentencePieceModel({ ...p, pieces: p.pieces.slice(0, 100) }), /256 byte pieces/);
  const dup = p.pieces.slice();
  dup[1500] = { ...dup[1499] };
  assert.throws(() => new SentencePieceModel({ ...p, pieces: dup }), /twice/);
});

test('fuzz: truncations and bit flips give a model or a UserError, never a crash or hang', () => {
  const small = serializeModelProto(trainBpe({ input: 'the cat sat on the mat\nthe dog ate the hat 123\n'.repeat(20), vocabSize: 40, byteFallback: false, normalization: 'identity' }));
  const nfkc = readFileSync(fx('spm-bpe2k.model'));
  const rng = new Rng(7);
  const t0 = Date.now();
  let ok = 0;
  let rejected = 0;
  for (let iter = 0; iter < 1500; iter++) {
    const base = iter % 10 === 0 ? nfkc : small;
    let b: Uint8Array;
    const mode = rng.int(3);
    if (mode === 0) b = base.subarray(0, rng.int(base.length));
    else {
      b = Uint8Array.from(base);
      const flips = 1 + rng.int(8);
      for (let k = 0; k < flips; k++) {
        const i = mode === 1 ? rng.int(b.length) : rng.int(Math.min(b.length, 64)); // mode 2: the header region
        b[i] ^= 1 << rng.int(8);
      }
    }
    try {
      const m = SentencePieceModel.fromBytes(b);
      // A surviving model must still encode/decode without crashing.
      m.decode(m.encode('the cat 123 ü'));
      ok++;
    } catch (e) {
      if (!(e instanceof UserError)) throw new Error(`iteration ${iter}: non-user error ${(e as Error).stack}`);
      rejected++;
    }
  }
  assert.ok(Date.now() - t0 < 30000);
  assert.ok(rejected > 100 && ok > 10, `ok ${ok} rejected ${rejected}`);
});
