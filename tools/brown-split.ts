/**
 * Deterministic Brown corpus splits for tokenizer fixtures, tests and benchmarks.
 *   node dist/tools/brown-split.js DIR   writes DIR/train.txt and DIR/heldout.txt (see tools/make-spm-fixtures.sh)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { brownFiles, brownText } from '../src/data/brown.js';

/** Training part: 100 files (~1.2 MB) of every genre, skipping every 10th file. */
export function trainFiles(): string[] {
  return brownFiles().filter((_, i) => i % 10 !== 0 && i % 4 === 1);
}

/** Held-out part: every 10th file. */
export function heldoutFiles(): string[] {
  return brownFiles().filter((_, i) => i % 10 === 0);
}

const enc = new TextEncoder();

/** Hard cases appended to the held-out text: digits, punctuation runs, non-Latin, NFKC, invalid UTF-8. */
export const EXTRA_LINES: Uint8Array[] = [
  'In 1961, 3.14159 and 2,000,000 people; call 555-0123 at 10:45pm on 12/31/1999.',
  'Wait!!! What??? ... --- ((( ))) $$$ %%% ;;; ``quoted\'\' !?!?',
  'Москва — столица России. Привет, мир!',
  '東京は日本の首都です。カタカナとひらがな、漢字。',
  'αβγ δέλτα Ελληνικά; مرحبا بالعالم; עברית; हिन्दी भाषा; 한국어 텍스트; ไทย',
  'emoji 😀👍🏽 family 👨‍👩‍👧 flags 🇺🇸',
  'ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３ ﬁ ligature ①② x² Å A\u030a ½ ™ …',
  '  leading and   multiple   spaces  ',
  'tab\tseparated\tvalues and\u00a0nbsp\u3000ideographic space',
  'zero\u200bwidth \u200djoiner \ufeffbom \u2581literal lower-block',
  'rare \u{10ffff} \u{1d400}\u{1d401} \u0007bell \u001b[0m',
  '',
  '1234567890 0.5 -42 +7 1e10 ٣٤٥ ０１２',
].map((s) => enc.encode(s)).concat([
  Uint8Array.from([0x61, 0xff, 0x62, 0x20, 0xc3, 0x20, 0xe2, 0x82, 0x20, 0x63]), // invalid bytes, truncated sequences
  Uint8Array.from([0xed, 0xa0, 0x80, 0x20, 0xc0, 0xaf, 0x20, 0xf4, 0x90, 0x80, 0x80, 0x20, 0x41]), // surrogate, overlong, > U+10FFFF
  Uint8Array.from([0x61, 0x00, 0x62, 0x20, 0x00]), // NUL bytes
]);

/** Held-out lines as bytes: the first `n` sentences of the held-out files followed by EXTRA_LINES. */
export function heldoutLines(n = 400): Uint8Array[] {
  const lines = brownText(heldoutFiles()).split('\n').filter(Boolean).slice(0, n);
  return [...lines.map((l): Uint8Array => enc.encode(l)), ...EXTRA_LINES];
}

export function joinLines(lines: Uint8Array[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const l of lines) parts.push(l, Uint8Array.of(10));
  return Buffer.concat(parts);
}

if (process.argv[1]?.endsWith('brown-split.js')) {
  const dir = process.argv[2];
  if (!dir) {
    console.error('usage: node dist/tools/brown-split.js DIR');
    process.exit(2);
  }
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'train.txt'), brownText(trainFiles()));
  writeFileSync(join(dir, 'heldout.txt'), joinLines(heldoutLines()));
}
