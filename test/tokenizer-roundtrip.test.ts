import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { SentencePieceModel } from '../src/tokenizer/index.js';
import { Rng } from '../src/util/rng.js';

const fx = (f: string) => fileURLToPath(new URL(`../../test/fixtures/tokenizer/${f}`, import.meta.url));

/** Random well-formed Unicode (no U+2581, which decodes to a space by design), biased to tricky ranges. */
function randomText(rng: Rng): string {
  const n = rng.int(40);
  let s = '';
  for (let i = 0; i < n; i++) {
    const r = rng.int(10);
    let cp: number;
    if (r < 3) cp = 0x20 + rng.int(0x5f);
    else if (r < 4) cp = [0x20, 0x20, 0x09, 0x0a, 0x0d, 0x00, 0xa0, 0x3000][rng.int(8)];
    else if (r < 6) cp = rng.int(0x800);
    else if (r < 8) cp = rng.int(0x10000);
    else cp = 0x10000 + rng.int(0x100000);
    if ((cp >= 0xd800 && cp <= 0xdfff) || cp === 0x2581) cp = 0x41;
    s += String.fromCodePoint(cp);
  }
  return s;
}

test('round trip decode(encode(x)) === x for random Unicode (LLaMA vocab: identity normalizer, byte fallback)', () => {
  const sp = SentencePieceModel.load(fx('llama-spm.model'));
  const rng = new Rng(42);
  for (let i = 0; i < 3000; i++) {
    const s = randomText(rng);
    const ids = sp.encode(s);
    assert.equal(sp.decode(ids), s, JSON.stringify(s));
    assert.equal(sp.decode(sp.encode(s, { bos: true, eos: true })), s);
  }
});

test('nmt_nfkc model: decode(encode(x)) equals the NFKC-normalized text for plain text', () => {
  const sp = SentencePieceModel.load(fx('spm-bpe2k.model'));
  for (const s of ['Hello world', 'ﬁ ligature ①', 'Ａｂｃ １２３', 'a  b   c']) {
    const want = s.normalize('NFKC').replace(/ +/g, ' ').trim();
    assert.equal(sp.decode(sp.encode(s)), want);
  }
});
