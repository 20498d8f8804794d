import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SentencePieceModel } from '../src/tokenizer/index.js';

const fx = (f: string) => fileURLToPath(new URL(`../../test/fixtures/tokenizer/${f}`, import.meta.url));

/** llama.cpp's test-tokenizer-0 format: inputs separated by "\n__ggml_vocab_test__\n", one output line each. */
function llamaCppCases(name: string): [string, number[]][] {
  const raw = readFileSync(fx(`${name}.inp`), 'utf8');
  const sep = '\n__ggml_vocab_test__\n';
  const inp: string[] = [];
  let pos = 0;
  while (pos < raw.length) {
    const next = raw.indexOf(sep, pos);
    if (next < 0) {
      inp.push(raw.slice(pos));
      break;
    }
    inp.push(raw.slice(pos, next));
    pos = next + sep.length;
  }
  const out = readFileSync(fx(`${name}.out`), 'utf8').split('\n');
  assert.ok(out.length >= inp.length);
  return inp.map((s, i) => [s, out[i].trim() ? out[i].trim().split(' ').map(Number) : []]);
}

test("Meta's LLaMA vocabulary matches every llama.cpp llama-spm case", () => {
  const sp = SentencePieceModel.load(fx('llama-spm.model'));
  assert.equal(sp.vocabSize, 32000);
  const cases = llamaCppCases('llama-spm');
  assert.equal(cases.length, 46);
  for (const [text, ids] of cases) {
    assert.deepEqual(sp.encode(text), ids, JSON.stringify(text));
    // SentencePiece decode restores the text exactly (identity normalizer, byte fallback).
    assert.equal(sp.decode(ids), text, JSON.stringify(text));
  }
});

test('LLaMA: BOS/EOS, pieces, known ids', () => {
  const sp = SentencePieceModel.load(fx('llama-spm.model'));
  assert.deepEqual(sp.encode('Hello world', { bos: true, eos: true }), [1, 15043, 3186, 2]);
  assert.deepEqual(sp.encodeAsPieces('Hello world'), ['▁Hello', '▁world']);
  assert.equal(sp.idToPiece(13), '<0x0A>');
  assert.equal(sp.decode([1, 15043, 3186, 2]), 'Hello world');
  // Invalid UTF-8 bytes fall back to U+FFFD, which is in the vocab or byte-encoded.
  assert.deepEqual(sp.encode(Uint8Array.from([0x61, 0xff])), sp.encode('a\ufffd'));
});

test('batch encoding on worker threads equals sequential encoding', async () => {
  const { encodeBatch } = await import('../src/tokenizer/index.js');
  const sp = SentencePieceModel.load(fx('llama-spm.model'));
  const texts = llamaCppCases('llama-spm').map(([t]) => t);
  for (let i = 0; i < 2000; i++) texts.push(`document ${i}: ` + 'the quick brown fox '.repeat(i % 50));
  const got = await encodeBatch(fx('llama-spm.model'), texts, { threads: 2, bos: true });
  assert.equal(got.length, texts.length);
  for (let i = 0; i < texts.length; i++) assert.deepEqual(Array.from(got[i]), sp.encode(texts[i], { bos: true }));
  assert.deepEqual(await encodeBatch(fx('llama-spm.model'), [], { threads: 1 }), []);
});

test('LLaMA: multi-megabyte lines, NUL bytes and invalid UTF-8 have defined results', () => {
  const sp = SentencePieceModel.load(fx('llama-spm.model'));
  const long = 'x'.repeat(1 << 20);
  const ids = sp.encode(long);
  assert.equal(sp.decode(ids), long);
  assert.deepEqual(sp.encode('a\0b'), [263, 3, 29890]); // <0x00> is id 3
  // Each invalid byte becomes U+FFFD (bytes EF BF BD) like SentencePiece; decode shows U+FFFD.
  const bad = sp.encode(Uint8Array.from([0x61, 0xc3, 0x28, 0xff]));
  assert.equal(sp.decode(bad), 'a\ufffd(\ufffd');
  assert.deepEqual(sp.encode('\ud800x'), sp.encode('\ufffdx')); // lone surrogate
  assert.throws(() => sp.decode([32000]), /invalid id/);
  assert.throws(() => sp.decode([-1]), /invalid id/);
});
