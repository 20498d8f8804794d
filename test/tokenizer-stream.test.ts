import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { SentencePieceModel } from '../src/tokenizer/index.js';
import { DecodeStream } from '../src/tokenizer/stream.js';
import { ByteTokenizer } from '../src/tokenizer/bytes.js';
import { MissingTokenizer, VocabTokenizer, vocabFromTokenizer } from '../src/tokenizer/vocab.js';
import type { Tokenizer } from '../src/tokenizer/types.js';
import { Rng } from '../src/util/rng.js';

const fx = (f: string) => fileURLToPath(new URL(`../../test/fixtures/tokenizer/${f}`, import.meta.url));

/**
 * Random id sequences that reach the cases the window must get right: byte pieces forming valid multi-byte
 * characters (also split across pushes), stray and truncated bytes (U+FFFD), a UTF-8 BOM, control pieces in the
 * middle (decode to nothing), pieces with and without the '▁' prefix, <unk>.
 */
function sequences(tok: Tokenizer, byteId: (b: number) => number, count: number, seed: number): number[][] {
  const rng = new Rng(seed);
  const enc = new TextEncoder();
  const chars = ['é', '€', '😀', '中', '\ufeff', 'a'];
  const out: number[][] = [];
  for (let s = 0; s < count; s++) {
    const ids: number[] = [];
    const len = 1 + Math.floor(rng.next() * 40);
    while (ids.length < len) {
      const u = rng.next();
      if (u < 0.25) for (const b of enc.encode(chars[Math.floor(rng.next() * chars.length)])) ids.push(byteId(b));
      else if (u < 0.35) ids.push(byteId(Math.floor(rng.next() * 256))); // any byte: often invalid alone
      else if (u < 0.45) ids.push(Math.floor(rng.next() * 3)); // <unk>, <s>, </s>
      else ids.push(Math.floor(rng.next() * tok.vocabSize));
    }
    out.push(ids);
  }
  return out;
}

function checkStream(tok: Tokenizer, seqs: number[][]): void {
  for (const ids of seqs) {
    const ds = new DecodeStream(tok);
    for (let n = 1; n <= ids.length; n++) {
      const got = ds.push(ids[n - 1]);
      const want = tok.decode(ids.slice(0, n));
      if (got !== want) assert.fail(`after ${n} of ${JSON.stringify(ids)}: ${JSON.stringify(got)} != decode ${JSON.stringify(want)}`);
      assert.equal(ds.text, got);
    }
  }
}

test('DecodeStream equals the full decode after every id: SentencePiece models (Llama, trained with options)', () => {
  for (const f of ['llama-spm.model', 'spm-opts.model', 'spm-bpe2k.model']) {
    const sp = SentencePieceModel.load(fx(f));
    const v = vocabFromTokenizer(sp, sp.vocabSize);
    assert.ok(v);
    const byteOf = new Map<number, number>();
    v.pieces.forEach((p, i) => {
      const m = /^<0x([0-9A-F]{2})>$/.exec(p);
      if (m) byteOf.set(parseInt(m[1], 16), i);
    });
    // a model without byte fallback has no byte pieces: stand in with ordinary ids
    const byteId = (b: number) => byteOf.get(b) ?? 3 + (b % (sp.vocabSize - 3));
    checkStream(sp, sequences(sp, byteId, 150, 7));
    // the llama2.c-style tokenizer over the same vocabulary
    checkStream(new VocabTokenizer(v), sequences(sp, byteId, 150, 8));
  }
});

test('DecodeStream equals the full decode after every id: byte and missing tokenizers', () => {
  const bt = new ByteTokenizer();
  checkStream(bt, sequences(bt, (b) => b + 3, 200, 9));
  const mt = new MissingTokenizer(100, 'no vocabulary');
  checkStream(mt, sequences(mt, (b) => b % 100, 50, 10));
});

test('DecodeStream decodes a window, not the whole sequence, once the text is complete', () => {
  const sp = SentencePieceModel.load(fx('llama-spm.model'));
  const ids = sp.encode('The quick brown fox jumps over the lazy dog. '.repeat(20));
  let longest = 0;
  const counting: Tokenizer = {
    vocabSize: sp.vocabSize,
    bosId: sp.bosId,
    eosId: sp.eosId,
    encode: (t) => sp.encode(t),
    decode: (x) => {
      longest = Math.max(longest, x.length);
      return sp.decode(x);
    },
  };
  const ds = new DecodeStream(counting);
  for (const id of ids) ds.push(id);
  assert.equal(ds.text, sp.decode(ids));
  assert.ok(ids.length > 100);
  assert.ok(longest <= 2, `decoded windows of up to ${longest} ids`);
});
