/** generate / chat / convert / score / bench generate from the command line. */
import { runCli, failsWithOneLine } from './helpers/cli.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeConfig } from '../src/model/config.js';
import { saveModelAs, loadAnyModel } from '../src/io/formats.js';
import { createRefBackend } from '../src/kernels/ref.js';
import { Decoder, generate } from '../src/inference/generate.js';
import { benchGenerate } from '../src/cli/bench-generate.js';
import { ByteTokenizer } from '../src/tokenizer/bytes.js';
import { peakedModel } from './helpers/models.js';

const config = makeConfig({ dim: 32, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 259, multipleOf: 16, maxSeqLen: 48 });
const dir = mkdtempSync(join(tmpdir(), 'llama-ts-cli-'));
const ckpt = join(dir, 'ck');
const model = peakedModel(config, 5);
saveModelAs('ckpt', ckpt, model, null);
const tok = new ByteTokenizer();

test('generate: greedy CLI output equals the library, on a checkpoint and on its GGUF / llama2.c / HF conversions', async () => {
  const lib = await generate(new Decoder(model), [[1, ...tok.encode('Hi')]], { temperature: 0, topK: 0, topP: 1, seed: 1, maxTokens: 12, tokenizer: tok, stopTokens: [] });
  const paths = [ckpt, join(dir, 'm.gguf'), join(dir, 'l2c', 'model.bin'), join(dir, 'hf')];
  assert.equal(runCli(['convert', '--from', ckpt, '--to', paths[1]]).code, 0);
  assert.equal(runCli(['convert', '--from', paths[1], '--to', paths[2]]).code, 0);
  assert.equal(runCli(['convert', '--from', paths[2], '--to', paths[3], '--to-format', 'hf', '--shard-mb', '0.01']).code, 0);
  for (const p of paths) {
    const r = runCli(['generate', '--model', p, '--prompt', 'Hi', '-n', '12', '--temperature', '0', '--ignore-eos', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.deepEqual(j.tokens, lib[0].tokens, p);
    assert.ok(j.decode_tokens_per_s > 0 && j.prefill_tokens_per_s > 0);
  }
  const s = runCli(['generate', '--model', ckpt, '--prompt', 'Hi', '-n', '12', '--temperature', '0', '--ignore-eos']);
  assert.equal(s.stdout, `Hi${lib[0].text}\n`);
  assert.match(s.stderr, /prefill 3 tokens at [\d.]+ tok\/s, decode 11 tokens at [\d.]+ tok\/s/);
  const b = runCli(['generate', '--model', ckpt, '--prompt', 'a', '--prompt', 'bb', '-n', '4', '--seed', '3', '--json']);
  assert.equal(b.stdout.trim().split('\n').length, 2);
});

test('generate --count and its alias sample: N samples streamed under headers, seeds S, S+1; past the context with shift', async () => {
  const o = { temperature: 0.9, topK: 0, topP: 1, maxTokens: 10, tokenizer: tok };
  const lib = await Promise.all([1, 2].map(async (seed) => (await generate(new Decoder(model), [[1, ...tok.encode('Hi')]], { ...o, seed }))[0].text));
  const g = runCli(['generate', '--model', ckpt, '--prompt', 'Hi', '-n', '10', '--temperature', '0.9', '--top-p', '1', '--top-k', '0', '--seed', '1', '--count', '2']);
  assert.equal(g.code, 0, g.stderr);
  assert.equal(g.stdout, `--- sample 1 ---\nHi${lib[0]}\n--- sample 2 ---\nHi${lib[1]}\n`);
  const s = runCli(['sample', '--checkpoint', ckpt, '--prompt', 'Hi', '--tokens', '10', '--temperature', '0.9', '--top-p', '1', '--top-k', '0', '--seed', '1', '--count', '2']);
  assert.equal(s.code, 0, s.stderr);
  assert.equal(s.stdout, g.stdout);
  // sample never refused a long continuation (it recomputed over a sliding window): 100 tokens from a 48-token context
  const long = runCli(['sample', '--checkpoint', ckpt, '--tokens', '100', '--temperature', '0']);
  assert.equal(long.code, 0, long.stderr);
  assert.match(long.stderr, /decode 99 tokens/);
  failsWithOneLine(['generate', '--model', ckpt, '--prompt', 'a', '--prompt', 'b', '--count', '2'], /--count takes one --prompt/);
});

test('score: JSON with mean loss, perplexity and per-position log-probabilities matching the model', () => {
  const ids = [1, ...tok.encode('Hello')];
  const f = join(dir, 'ids.txt');
  writeFileSync(f, ids.join(' '));
  const r = runCli(['score', '--model', ckpt, '--ids', f]);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.predicted, 5);
  model.forward(Int32Array.from(ids.slice(0, -1)), 1, 5);
  const sum = model.loss(Int32Array.from(ids.slice(1)), null);
  assert.ok(Math.abs(j.mean_loss - sum / 5) < 1e-5, `${j.mean_loss} vs ${sum / 5}`);
  assert.ok(Math.abs(j.perplexity - Math.exp(j.mean_loss)) < 1e-9);
  assert.ok(Math.abs(-j.logprobs.reduce((a: number, b: number) => a + b, 0) / 5 - j.mean_loss) < 1e-12);
  const t = JSON.parse(runCli(['score', '--model', ckpt, '--text', 'Hello']).stdout);
  assert.deepEqual(t.logprobs, j.logprobs, '--text prepends BOS and byte-tokenizes');
});

test('chat: one completion per input line', () => {
  const r = runCli(['chat', '--model', ckpt, '-n', '5', '--temperature', '0', '--ignore-eos'], 'ab\ncd\n');
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.split('\n');
  assert.ok(lines[0].startsWith('ab') && lines[1].startsWith('cd'));
});

test('bench generate prints one JSON line with prefill and decode tokens/s', async () => {
  const lines: string[] = [];
  assert.equal(await benchGenerate(['--model', ckpt, '--prompt-tokens', '8', '--tokens', '8', '--threads', '2'], (l) => lines.push(l)), 0);
  assert.equal(lines.length, 1);
  const j = JSON.parse(lines[0]);
  assert.ok(j.prefill_tokens_per_s > 0 && j.decode_tokens_per_s > 0);
  assert.equal(j.prefill_tokens, 8);
  assert.equal(j.threads_requested, 2);
  // weights a decoded token reads, counted here from the shapes: 2 layers of wq, wk, wv, wo, w1, w2, w3 and two norm
  // gains, the final norm, the head, one embedding row (float32)
  const kv = (32 / 4) * 2, F = 96; // headDim 8 × 2 KV heads; hidden: 2/3·4·32 = 85 → multiple of 16
  const perLayer = 32 * 32 * 2 + 2 * kv * 32 + 3 * F * 32 + 2 * 32;
  assert.equal(j.weight_bytes_per_token, 4 * (2 * perLayer + 32 + 259 * 32 + 32));
  assert.ok(Math.abs(j.decode_weight_gb_per_s - (j.weight_bytes_per_token * j.decode_tokens_per_s) / 1e9) < 1e-9);
  assert.ok(j.copy_gb_per_s > 0 && j.copy_buffer_bytes === 128 * 2 ** 20 && j.copy_threads >= 1);
  assert.ok(j.read_gb_per_s > 0 && j.read_buffer_bytes === 256 * 2 ** 20 && j.read_threads === j.copy_threads);
  assert.ok(Math.abs(j.read_ceiling_tokens_per_s - (j.read_gb_per_s * 1e9) / j.weight_bytes_per_token) < 1e-6);
});

test('bad input: one-line errors', () => {
  failsWithOneLine(['generate', '--model', ckpt, '--prompt', 'x'.repeat(60)], /prompt is 61 tokens; the model's context is 48/);
  failsWithOneLine(['generate', '--model', ckpt, '--prompt', 'hi', '-n', '100'], /exceeds the model's context of 48/);
  failsWithOneLine(['generate'], /--model PATH is required/);
  failsWithOneLine(['generate', '--model', join(dir, 'missing')], /does not exist/);
  failsWithOneLine(['generate', '--model', ckpt, '--top-p', '2'], /--top-p must be in/);
  failsWithOneLine(['score', '--model', ckpt], /exactly one of --text/);
  failsWithOneLine(['score', '--model', ckpt, '--text', 'y'.repeat(60)], /sequence is 61 tokens/);
  writeFileSync(join(dir, 'bad-ids.txt'), '1 2 x');
  failsWithOneLine(['score', '--model', ckpt, '--ids', join(dir, 'bad-ids.txt')], /integer token ids only/);
  writeFileSync(join(dir, 'oov.txt'), '1 2 900');
  failsWithOneLine(['score', '--model', ckpt, '--ids', join(dir, 'oov.txt')], /token id 900 is outside the vocabulary/);
  failsWithOneLine(['convert', '--from', ckpt, '--to', join(dir, 'noext')], /cannot infer the output format/);
  failsWithOneLine(['convert', '--from', ckpt, '--to', join(dir, 'x.gguf'), '--type', 'q5_1'], /--type q5_1 is not available for gguf \(choose f32, f16, bf16, q8_0, q4_0, q4_k\)/);
  failsWithOneLine(['convert', '--from', ckpt, '--to', join(dir, 'x.bin'), '--type', 'q4_0'], /--type q4_0 is not available for llama2c/);
  writeFileSync(join(dir, 'junk.gguf'), 'GGUF\x03\x00\x00\x00');
  failsWithOneLine(['generate', '--model', join(dir, 'junk.gguf')], /truncated/);
  writeFileSync(join(dir, 'junk.bin'), Buffer.alloc(100));
  failsWithOneLine(['score', '--model', join(dir, 'junk.bin'), '--text', 'a'], /not positive/);
  const loaded = loadAnyModel(ckpt, createRefBackend('f32'));
  assert.equal(loaded.format, 'ckpt');
});
