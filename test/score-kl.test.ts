/** `score --reference`: perplexities of two models on the same text and the KL divergence between them (compareModels). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeConfig } from '../src/model/config.js';
import { Decoder } from '../src/inference/generate.js';
import { compareModels, scoreTokens } from '../src/inference/score.js';
import { writeLlamaGguf } from '../src/io/gguf-llama.js';
import { byteVocab } from '../src/tokenizer/vocab.js';
import { peakedModel } from './helpers/models.js';
import { runCli, failsWithOneLine } from './helpers/cli.js';

const config = makeConfig({ dim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 259, multipleOf: 32, maxSeqLen: 16 });
const ids = [1, 72, 101, 108, 108, 111, 32, 119, 111, 114, 108, 100, 33, 10, 84, 104, 101, 32, 99, 97, 116, 46];

test('compareModels: KL, perplexities and top-1 agreement as computed here from both models\' logits, window by window', () => {
  const a = new Decoder(peakedModel(config, 1)), b = new Decoder(peakedModel(config, 2));
  const r = compareModels(a, b, ids, 10);
  // independently: windows of 10 tokens [0..9], [10..19], [20..21]; each window's first token is context only
  const V = config.vocabSize;
  let kl = 0, la = 0, lb = 0, agree = 0, n = 0;
  for (let s = 0; s < ids.length; s += 10) {
    const part = ids.slice(s, s + 10);
    const xa = a.logitsAll(part), xb = b.logitsAll(part);
    for (let i = 0; i + 1 < part.length; i++) {
      const lsm = (x: Float32Array) => {
        const row = Array.from(x.subarray(i * V, (i + 1) * V));
        const m = Math.max(...row);
        const z = Math.log(row.reduce((acc, v) => acc + Math.exp(v - m), 0)) + m;
        return row.map((v) => v - z);
      };
      const pa = lsm(xa as Float32Array), pb = lsm(xb as Float32Array);
      kl += pb.reduce((acc, v, j) => acc + Math.exp(v) * (v - pa[j]), 0);
      la -= pa[part[i + 1]];
      lb -= pb[part[i + 1]];
      if (pa.indexOf(Math.max(...pa)) === pb.indexOf(Math.max(...pb))) agree++;
      n++;
    }
  }
  assert.equal(r.windows, 3);
  assert.equal(r.predicted, n);
  assert.ok(Math.abs(r.mean_kl - kl / n) < 1e-9 * Math.max(1, kl / n), `${r.mean_kl} vs ${kl / n}`);
  assert.ok(Math.abs(r.model.mean_loss - la / n) < 1e-9);
  assert.ok(Math.abs(r.reference.mean_loss - lb / n) < 1e-9);
  assert.equal(r.top1_agreement, agree / n);
  assert.ok(r.mean_kl > 0.01 && r.max_kl >= r.p99_kl && r.p99_kl >= 0);
  // one window equals scoreTokens' loss; a model against itself diverges by nothing
  const one = compareModels(a, a, ids.slice(0, 16));
  assert.equal(one.mean_kl, 0);
  assert.equal(one.top1_agreement, 1);
  assert.ok(Math.abs(one.model.mean_loss - scoreTokens(a, ids.slice(0, 16)).mean_loss) < 1e-12);
});

test('score --model Q --reference F: quantized GGUFs against their F32 file (Q8_0 closer than Q4_0), one-line errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'llama-ts-kl-'));
  const model = peakedModel(config, 5);
  const f = join(dir, 'f32.gguf');
  writeLlamaGguf(f, model, byteVocab(259), 'f32');
  const text = join(dir, 'text.txt');
  writeFileSync(text, 'The quick brown fox jumps over the lazy dog. '.repeat(3));
  const kl: Record<string, number> = {};
  for (const t of ['q8_0', 'q4_0']) {
    const q = join(dir, `${t}.gguf`);
    writeLlamaGguf(q, model, byteVocab(259), t as 'q8_0' | 'q4_0');
    const r = runCli(['score', '--model', q, '--reference', f, '--text-file', text]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.tokens, 136);
    assert.equal(j.windows, 9);
    assert.ok(j.model.perplexity > 1 && j.reference.perplexity > 1 && j.mean_kl > 0, r.stdout);
    kl[t] = j.mean_kl;
  }
  assert.ok(kl.q8_0 < kl.q4_0, JSON.stringify(kl));
  const self = JSON.parse(runCli(['score', '--model', f, '--reference', f, '--text', 'abc', '--backend', 'ref']).stdout);
  assert.equal(self.mean_kl, 0);
  failsWithOneLine(['score', '--model', f, '--reference', f, '--text', 'abc', '--window', '99'], /--window 99 exceeds the models' context \(16\)/);
  failsWithOneLine(['score', '--model', f, '--text', 'abc', '--window', '4'], /--window applies to --reference/);
  failsWithOneLine(['score', '--model', f, '--text', 'abc', '--text-file', text], /exactly one of/);
});
