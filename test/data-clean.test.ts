import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cleaner, HashSet64, hash64, alphaShare, lineRepeatShare, CLEAN_DEFAULTS } from '../src/data/clean.js';
import { Rng } from '../src/util/rng.js';
import { randomDoc } from './helpers/data.js';

test('dedup removes planted exact duplicates and nothing else', () => {
  const rng = new Rng(3);
  const unique = Array.from({ length: 300 }, (_, i) => `Doc ${i}.\n${randomDoc(rng, 60 + rng.int(60))}`);
  // near-duplicates differ in one word: they must survive
  const near = unique.slice(0, 20).map((d) => d.replace(/^Doc (\d+)\./, 'Doc $1 (revised).'));
  const stream: string[] = [];
  const expected: string[] = [];
  const planted = new Set<number>();
  for (let i = 0; i < unique.length; i++) {
    stream.push(unique[i]);
    expected.push(unique[i]);
    if (i % 10 === 9) {
      // an exact copy of an earlier document, sometimes with different line endings / Unicode form
      const j = rng.int(i + 1);
      planted.add(stream.length);
      stream.push(i % 20 === 9 ? unique[j].replace(/\n/g, '\r\n') + '  \n' : unique[j]);
    }
  }
  for (const n of near) {
    stream.push(n);
    expected.push(n);
  }
  // document dedup alone: exactly the planted copies go
  const c = new Cleaner({ minChars: 10, dedupLines: false });
  const kept = stream.map((d) => c.clean(d)).filter((d): d is string => d !== null);
  assert.deepEqual(kept, expected);
  assert.equal(c.report.exactDuplicates.docs, planted.size);
  assert.equal(c.report.output.docs, expected.length);
  // with line dedup too (the default): unique documents are untouched; a near-duplicate loses the lines it
  // copied, keeping only its one new line
  const c2 = new Cleaner({ minChars: 10 });
  const kept2 = stream.map((d) => c2.clean(d)).filter((d): d is string => d !== null);
  assert.deepEqual(kept2.slice(0, unique.length), unique);
  // (lines under line_dedup_min_chars are never deduplicated)
  const keep = (l: string, k: number) => k === 0 || l.trim().length < CLEAN_DEFAULTS.lineDedupMinChars;
  assert.deepEqual(kept2.slice(unique.length), near.map((n) => n.split('\n').filter(keep).join('\n')));
  assert.equal(c2.report.exactDuplicates.docs, planted.size);
  assert.equal(c2.report.lineDedup.lines, near.reduce((a, n) => a + n.split('\n').filter((l, k) => !keep(l, k)).length, 0));
});

test('line dedup removes a boilerplate line everywhere but its first occurrence', () => {
  const rng = new Rng(5);
  const boiler = 'Copyright 2024 Example Corp. All rights reserved.';
  const boiler2 = 'COPYRIGHT 1999 example corp.  all rights reserved.'; // same after the CCNet line key
  const docs = Array.from({ length: 12 }, (_, i) => `${randomDoc(rng, 50)}\n${i % 2 ? boiler2 : boiler}`);
  const c = new Cleaner({ minChars: 10 });
  const out = docs.map((d) => c.clean(d)!);
  assert.ok(out[0].endsWith(boiler));
  for (let i = 1; i < docs.length; i++) assert.equal(out[i], docs[i].slice(0, docs[i].lastIndexOf('\n')), `doc ${i}`);
  assert.equal(c.report.lineDedup.lines, 11);
  // short lines are not treated as boilerplate
  const c2 = new Cleaner({ minChars: 1 });
  assert.match(c2.clean('Chapter 1\n' + randomDoc(rng))!, /^Chapter 1\n/);
  assert.match(c2.clean('Chapter 1\n' + randomDoc(new Rng(99)))!, /^Chapter 1\n/);
  assert.equal(c2.report.lineDedup.lines, 0);
});

test('NFC normalisation makes composed and decomposed text the same document', () => {
  const c = new Cleaner({ minChars: 5, minAlphaShare: 0 });
  const composed = 'Caf\u00e9 au lait, s\u00e9ance, r\u00e9sum\u00e9 — a document of accented words.';
  const decomposed = composed.normalize('NFD');
  assert.notEqual(composed, decomposed);
  assert.equal(c.clean(decomposed), composed);
  assert.equal(c.clean(composed), null);
  assert.equal(c.report.normalize.changedDocs, 1);
  assert.equal(c.report.exactDuplicates.docs, 1);
});

test('quality filters: length, alphabetic share, repeated lines; each counted', () => {
  const c = new Cleaner({ minChars: 50, minAlphaShare: 0.6, maxLineRepeat: 0.3, dedupLines: false });
  assert.equal(c.clean('too short'), null);
  assert.equal(c.clean('1234 5678 9012 3456 7890 1234 5678 9012 3456 7890 | ### $$$ %%% data'), null);
  assert.equal(c.clean('buy now\nbuy now\nbuy now\nbuy now\nreal content line here with words'), null);
  const good = 'A perfectly ordinary paragraph of English prose, long enough to pass the filters.';
  assert.equal(c.clean(good), good);
  assert.deepEqual([c.report.tooShort.docs, c.report.lowAlpha.docs, c.report.repeatedLines.docs, c.report.output.docs], [1, 1, 1, 1]);
  assert.equal(c.report.input.docs, 4);
  assert.ok(alphaShare('abc 123') === 0.5);
  assert.equal(lineRepeatShare('a\nb\na\na'), 0.5);
  assert.equal(CLEAN_DEFAULTS.normalize, true);
});

test('HashSet64 grows and finds every member', () => {
  const s = new HashSet64(4);
  for (let i = 0; i < 50_000; i++) {
    const [h, l] = hash64(`k${i}`);
    assert.equal(s.add(h, l), true);
  }
  for (let i = 0; i < 50_000; i += 7) {
    const [h, l] = hash64(`k${i}`);
    assert.equal(s.add(h, l), false);
  }
  assert.equal(s.size, 50_000);
  assert.equal(s.add(0, 0), true);
  assert.equal(s.add(0, 1), false, 'the zero hash is folded onto [0, 1]');
});

test('the fused line-key hash equals hashing the CCNet line key', async () => {
  const { lineKeyHash, lineKey } = await import('../src/data/clean.js');
  const lines = ['  Hello   World 123  ', 'ÀÉÎ ÕÜ  ñ 42 x', '\tTabs\tand\u00a0nbsp  ', 'ΑΒΓ Привет 9 ٣', '', '   ', 'a', 'Ünïcödé\u2003spaces\u3000here', 'emoji 😀 line 7'];
  for (const l of lines) assert.deepEqual(lineKeyHash(l, 0x5151), hash64(lineKey(l), 0x5151), JSON.stringify(l));
});
