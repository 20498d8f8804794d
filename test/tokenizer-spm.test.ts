import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SentencePieceModel } from '../src/tokenizer/index.js';

const fx = (f: string) => fileURLToPath(new URL(`../../test/fixtures/tokenizer/${f}`, import.meta.url));

function splitLines(buf: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let s = 0;
  for (let i = 0; i < buf.length; i++)
    if (buf[i] === 10) {
      out.push(buf.subarray(s, i));
      s = i + 1;
    }
  if (s < buf.length) out.push(buf.subarray(s));
  return out;
}

test('spm_train BPE model (nmt_nfkc, split digits, byte fallback): ids identical to spm_encode on held-out Brown + hard cases', () => {
  const sp = SentencePieceModel.load(fx('spm-bpe2k.model'));
  assert.equal(sp.vocabSize, 2000);
  assert.equal(sp.proto.normalizerSpec?.name, 'nmt_nfkc');
  const lines = splitLines(readFileSync(fx('heldout.txt')));
  const ids = readFileSync(fx('spm-bpe2k.heldout.ids'), 'utf8').split('\n');
  const pieces = readFileSync(fx('spm-bpe2k.heldout.pieces'), 'utf8').split('\n');
  assert.ok(lines.length > 400);
  let bad = 0;
  for (let i = 0; i < lines.length; i++) {
    const want = ids[i] ? ids[i].split(' ').map(Number) : [];
    const got = sp.encode(lines[i]);
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      if (bad++ < 5) console.log(i, JSON.stringify(Buffer.from(lines[i]).toString()), '\n got', sp.encodeAsPieces(lines[i]).join(' '), '\nwant', pieces[i]);
    }
    // Strings (valid UTF-8 lines) give the same ids as bytes.
    let str: string | null = null;
    try {
      str = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(lines[i]);
    } catch {
      str = null;
    }
    if (str !== null) assert.deepEqual(sp.encode(str), got);
    assert.equal(sp.encodeAsPieces(lines[i]).join(' '), pieces[i]);
  }
  assert.equal(bad, 0);
});

test('spm_train model with identity normalizer, whitespace-only pieces, user-defined/control symbols, <unk> (no byte fallback): ids and decoding identical to spm_encode/spm_decode', () => {
  const sp = SentencePieceModel.load(fx('spm-opts.model'));
  assert.equal(sp.proto.normalizerSpec?.name, 'identity');
  const lines = splitLines(readFileSync(fx('heldout-opts.txt')));
  const ids = readFileSync(fx('spm-opts.heldout.ids'), 'utf8').split('\n');
  const decoded = splitLines(readFileSync(fx('spm-opts.heldout.decoded')));
  let unk = 0;
  for (let i = 0; i < lines.length; i++) {
    const want = ids[i] ? ids[i].split(' ').map(Number) : [];
    const got = sp.encode(lines[i]);
    assert.deepEqual(got, want, `line ${i}: ${Buffer.from(lines[i]).toString()}`);
    unk += got.filter((x) => x === sp.unkId).length;
    assert.equal(sp.decode(want), Buffer.from(decoded[i]).toString(), `decode line ${i}`);
  }
  assert.ok(unk > 10, 'the held-out text exercises <unk>');
});
