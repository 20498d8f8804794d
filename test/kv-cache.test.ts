/** The F16 KV cache (--kv-cache f16): decoding over it against the float32 cache, forks of it, the CLI flag. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeConfig } from '../src/model/config.js';
import { saveModelAs, loadAnyModel } from '../src/io/formats.js';
import { createRefBackend } from '../src/kernels/ref.js';
import { Decoder, generate, KVCache } from '../src/inference/generate.js';
import { scoreTokens } from '../src/inference/score.js';
import { ByteTokenizer } from '../src/tokenizer/bytes.js';
import { peakedModel } from './helpers/models.js';
import { runCli, failsWithOneLine } from './helpers/cli.js';
import { skip, native } from './helpers/native.js';
import { inferenceMemory } from '../src/model/memory.js';

const config = makeConfig({ dim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 259, multipleOf: 16, maxSeqLen: 64 });
const model = peakedModel(config, 21);
const tokens = Array.from({ length: 40 }, (_, i) => (i * 37 + 11) % 259);

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): [number, number] {
  let d = 0, m = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i])), m = Math.max(m, Math.abs(b[i]));
  return [d, m];
}

for (const [name, be] of [['ref', () => model], ['native', () => null]] as const) {
  test(`F16 cache on ${name}: logits of every position within half-rounding of the float32 cache's; greedy tokens the same`, { skip: name === 'native' ? skip : false }, async () => {
    const m = be() ?? (() => {
      const dir = mkdtempSync(join(tmpdir(), 'llama-ts-kv-'));
      saveModelAs('ckpt', join(dir, 'ck'), model, null);
      return loadAnyModel(join(dir, 'ck'), native()).model;
    })();
    const f32 = new Decoder(m), f16 = new Decoder(m, { kvCache: 'f16' });
    assert.equal(f16.newCache().type, 'f16');
    assert.ok(f16.newCache().k instanceof Uint16Array);
    // prefill in chunks of 7 (positions of a chunk attend to the cache written by earlier chunks and to each other)
    const a = f32.logitsAll(tokens, 7), b = f16.logitsAll(tokens, 7);
    const [d, scale] = maxDiff(b, a);
    assert.ok(d > 0, 'the cache is rounded to half: some logit moves');
    assert.ok(d < 0.01 * scale, `F16 cache logits off by ${d} (scale ${scale})`);
    const tok = new ByteTokenizer();
    const o = { maxTokens: 16, temperature: 0, topK: 0, topP: 1, tokenizer: tok, stopTokens: [] as number[], seed: 1 };
    const [ga] = await generate(f32, [tokens.slice(0, 9)], o);
    const [gb] = await generate(f16, [tokens.slice(0, 9)], o);
    assert.deepEqual(gb.tokens, ga.tokens);
  });
}

test('F16 cache: copyPrefix forks the first n positions (head-major layout), so decoding on from the fork equals decoding on from the original', () => {
  const dec = new Decoder(model, { kvCache: 'f16' });
  const src = dec.newCache(50);
  dec.prefill(src, tokens.slice(0, 30));
  const fork = dec.newCache(40);
  fork.copyPrefix(src, 20);
  assert.equal(fork.length, 20);
  const fresh = dec.newCache(40);
  dec.prefill(fresh, tokens.slice(0, 20));
  assert.deepEqual(fork.k.subarray(0, fork.k.length), fresh.k.subarray(0, fresh.k.length));
  assert.deepEqual(fork.v.subarray(0, fork.v.length), fresh.v.subarray(0, fresh.v.length));
  const x = dec.step([{ cache: fork, tokens: [5, 6] }], 'all')[0], y = dec.step([{ cache: fresh, tokens: [5, 6] }], 'all')[0];
  assert.deepEqual(x, y);
  assert.throws(() => fork.copyPrefix(new KVCache(2, 50, 32, createRefBackend('f32')), 0), /different shapes/);
  assert.throws(() => fork.copyPrefix(src, 31), /31 positions/);
  assert.throws(() => new KVCache(2, 8, 32, createRefBackend('f32'), 'f16', 12), /not a multiple of the head size 12/);
  // scoring (which forks caches for shared prefixes) runs over either cache type
  assert.ok(Number.isFinite(scoreTokens(dec, tokens).mean_loss));
});

test('--kv-cache: generate and bench generate take f16 (same greedy text here); an unknown type is a one-line error; the memory check counts half-size caches', () => {
  const dir = mkdtempSync(join(tmpdir(), 'llama-ts-kvcli-'));
  const ckpt = join(dir, 'ck');
  saveModelAs('ckpt', ckpt, model, null);
  const run = (extra: string[]) => runCli(['generate', '--model', ckpt, '--prompt', 'Hello', '-n', '12', '--temperature', '0', '--ignore-eos', '--json', ...extra]);
  const a = run([]), b = run(['--kv-cache', 'f16']);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  assert.equal(JSON.parse(b.stdout).text, JSON.parse(a.stdout).text);
  failsWithOneLine(['generate', '--model', ckpt, '--prompt', 'x', '--kv-cache', 'q8'], /--kv-cache must be one of f32, f16, got 'q8'/);
  failsWithOneLine(['serve', '--model', ckpt, '--kv-cache', 'bf16'], /--kv-cache must be one of f32, f16, got 'bf16'/);
  const bench = runCli(['bench', 'generate', '--model', ckpt, '--prompt-tokens', '20', '--tokens', '8', '--kv-cache', 'f16', '--no-copy']);
  assert.equal(bench.code, 0, bench.stderr);
  assert.equal(JSON.parse(bench.stdout).kv_cache, 'f16');
  const kv = (kvBytes?: number) => inferenceMemory(config, { caches: 3, kvBytes }).parts.find((p) => p.name === 'KV caches')?.bytes ?? 0;
  assert.equal(kv(2) * 2, kv());
  assert.equal(kv(), 3 * 2 * config.nLayers * config.maxSeqLen * config.nKvHeads * (config.dim / config.nHeads) * 4);
});
