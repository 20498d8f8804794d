/** KV-cache generation agrees with full recomputation; sampling, stops, batching and context limits. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeConfig, type LlamaConfig } from '../src/model/config.js';
import { Llama } from '../src/model/llama.js';
import { createRefBackend } from '../src/kernels/ref.js';
import { Decoder, generate, generateStream, tokens as tokenIter, emptyStats } from '../src/inference/generate.js';
import { generateRecompute } from './helpers/recompute.js';
import { applyRepetitionPenalty } from '../src/inference/sampler.js';
import { ByteTokenizer } from '../src/tokenizer/bytes.js';
import { UserError } from '../src/util/errors.js';
import { Rng } from '../src/util/rng.js';
import { peakedModel } from './helpers/models.js';

const config = makeConfig({ dim: 32, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 259, multipleOf: 16, maxSeqLen: 48 });

function fullLogits(model: Llama, toks: number[]): Float32Array {
  model.forward(Int32Array.from(toks), 1, toks.length);
  return model.logits() as Float32Array;
}

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

test('KV cache: logits at every position equal full recomputation (1e-5), one token at a time and in chunks', () => {
  const model = peakedModel(config);
  const dec = new Decoder(model);
  const rng = new Rng(9);
  const toks = Array.from({ length: 40 }, () => rng.int(config.vocabSize));
  const full = fullLogits(model, toks);
  const V = config.vocabSize;
  // all positions in one prefill (chunked internally by 7)
  assert.ok(maxAbs(dec.logitsAll(toks, 7), full) <= 1e-5);
  // prefill 5, then one token at a time
  const cache = dec.newCache();
  const first = dec.step([{ cache, tokens: toks.slice(0, 5) }], 'all')[0];
  assert.ok(maxAbs(first, full.subarray(0, 5 * V)) <= 1e-5);
  for (let p = 5; p < toks.length; p++) {
    const lg = dec.step([{ cache, tokens: [toks[p]] }], 'last')[0];
    const err = maxAbs(lg, full.subarray(p * V, (p + 1) * V));
    assert.ok(err <= 1e-5, `position ${p}: max |Δlogit| ${err}`);
  }
  assert.equal(cache.length, toks.length);
});

test('batched decode of prompts of different lengths equals decoding each alone', () => {
  const model = peakedModel(config);
  const dec = new Decoder(model);
  const a = [1, 10, 20, 30, 40, 50];
  const b = [1, 7];
  const ca = dec.newCache();
  const cb = dec.newCache();
  dec.prefill(ca, a);
  dec.prefill(cb, b);
  const both = dec.step([{ cache: ca, tokens: [5] }, { cache: cb, tokens: [6] }]);
  assert.ok(maxAbs(both[0], fullLogits(model, [...a, 5]).subarray(6 * config.vocabSize)) <= 1e-5);
  assert.ok(maxAbs(both[1], fullLogits(model, [...b, 6]).subarray(2 * config.vocabSize)) <= 1e-5);
  // reuse: the decoder's own buffers (one per item), the same values as freshly allocated logits
  const r1 = dec.step([{ cache: ca, tokens: [8] }, { cache: cb, tokens: [9] }], 'last', true);
  assert.notEqual(r1[0], r1[1]);
  assert.ok(maxAbs(r1[0], fullLogits(model, [...a, 5, 8]).subarray(7 * config.vocabSize)) <= 1e-5);
  assert.ok(maxAbs(r1[1], fullLogits(model, [...b, 6, 9]).subarray(3 * config.vocabSize)) <= 1e-5);
  const r2 = dec.step([{ cache: ca, tokens: [3] }], 'last', true);
  assert.equal(r2[0], r1[0]);
  assert.ok(maxAbs(r2[0], fullLogits(model, [...a, 5, 8, 3]).subarray(8 * config.vocabSize)) <= 1e-5);
});

test('greedy and seeded sampling: identical to full recomputation, batch equals singles', async () => {
  const model = peakedModel(config);
  const dec = new Decoder(model);
  const prompts = [[1, 72, 104, 108], [1, 50], [1, 3, 4, 5, 6, 7, 8, 9]];
  for (const sampling of [{ temperature: 0, topK: 0, topP: 1 }, { temperature: 0.9, topK: 20, topP: 0.9 }, { temperature: 1, topK: 0, topP: 1 }]) {
    const o = { ...sampling, maxTokens: 20, seed: 11 };
    const batch = await generate(dec, prompts, o);
    for (const [i, p] of prompts.entries()) {
      const ref = generateRecompute(model, p, { ...o, seed: o.seed + i });
      assert.deepEqual(batch[i].tokens, ref, `prompt ${i} with ${JSON.stringify(sampling)}`);
      const single = await generate(dec, [p], { ...o, seed: o.seed + i });
      assert.deepEqual(single[0].tokens, ref);
      assert.equal(batch[i].finish, 'max_tokens');
    }
  }
});

test('streaming: async iterator yields every token; stop token, stop string, max tokens, context', async () => {
  const model = peakedModel(config);
  const dec = new Decoder(model);
  const tok = new ByteTokenizer();
  const prompt = [1, ...tok.encode('ab')];
  const base = { temperature: 0, topK: 0, topP: 1, seed: 1, tokenizer: tok, stopTokens: [] as number[] };
  const plain = await generate(dec, [prompt], { ...base, maxTokens: 30 });
  const ids: number[] = [];
  let streamed = '';
  for await (const ev of tokenIter(dec, prompt, { ...base, maxTokens: 30 })) {
    ids.push(ev.id);
    streamed += ev.text;
  }
  assert.deepEqual(ids, plain[0].tokens);
  assert.equal(streamed, plain[0].text);
  assert.equal(plain[0].text, tok.decode(plain[0].tokens));
  // stop on a token id: the sequence ends before it
  const stopId = plain[0].tokens[4];
  const firstAt = plain[0].tokens.indexOf(stopId);
  const s1 = await generate(dec, [prompt], { ...base, maxTokens: 30, stopTokens: [stopId] });
  assert.deepEqual(s1[0].tokens, plain[0].tokens.slice(0, firstAt));
  assert.equal(s1[0].finish, 'eos');
  // stop on a string: the text is cut before it and never streamed
  const full = plain[0].text;
  const stopStr = full.slice(6, 8);
  const cut = full.indexOf(stopStr);
  let streamed2 = '';
  let last: string | undefined;
  for await (const ev of generateStream(dec, [prompt], { ...base, maxTokens: 30, stop: [stopStr] })) {
    streamed2 += ev.text;
    last = ev.done;
  }
  assert.equal(streamed2, full.slice(0, cut));
  assert.equal(last, 'stop');
  // too long: a clear error, or a documented stop at the context
  await assert.rejects(generate(dec, [prompt], { ...base, maxTokens: 100 }), (e: Error) => e instanceof UserError && /context of 48/.test(e.message));
  await assert.rejects(generate(dec, [new Array(49).fill(5)], { ...base, maxTokens: 1, onContextFull: 'stop' }), UserError);
  const lim = await generate(dec, [prompt], { ...base, maxTokens: 100, onContextFull: 'stop' });
  assert.equal(lim[0].finish, 'length');
  assert.equal(prompt.length + lim[0].tokens.length, config.maxSeqLen);
  await assert.rejects(generate(dec, [[1, 999]], { ...base, maxTokens: 1 }), /outside the vocabulary/);
  const stats = emptyStats();
  await generate(dec, [prompt, prompt], { ...base, maxTokens: 5 }, stats);
  assert.equal(stats.prefillTokens, 2 * prompt.length);
  assert.equal(stats.decodeTokens, 2 * 4);
});

test("context full with 'shift': the cache restarts from the last half of the context and generation goes on", async () => {
  const model = peakedModel(config);
  const dec = new Decoder(model);
  const prompt = [1, 5, 9];
  const o = { temperature: 0, topK: 0, topP: 1, seed: 1, stopTokens: [] as number[] };
  const stopped = (await generate(dec, [prompt], { ...o, maxTokens: 100, onContextFull: 'stop' }))[0];
  const shifted = (await generate(dec, [prompt], { ...o, maxTokens: 100, onContextFull: 'shift' }))[0];
  assert.equal(shifted.finish, 'max_tokens');
  assert.equal(shifted.tokens.length, 100);
  // identical until the context is full
  assert.deepEqual(shifted.tokens.slice(0, stopped.tokens.length), stopped.tokens);
  // the next token is the greedy choice after the last half-context (24 tokens) of what came before
  const ctx = [...prompt, ...shifted.tokens];
  // the token after the last one computed from a full cache (index prompt + stopped + 1) is the first after the shift
  const at = prompt.length + stopped.tokens.length + 1;
  const window = ctx.slice(at - 25, at);
  model.forward(Int32Array.from(window), 1, window.length);
  const lg = model.logits([window.length - 1]);
  let best = 0;
  for (let i = 1; i < lg.length; i++) if (lg[i] > lg[best]) best = i;
  assert.equal(ctx[at], best);
});

test('repetition penalty: divides positive and multiplies negative logits of seen tokens once', () => {
  const l = Float32Array.from([2, -2, 1, 0.5]);
  applyRepetitionPenalty(l, [0, 1, 1, 0], 2);
  assert.deepEqual(Array.from(l), [1, -4, 1, 0.5]);
});

test('repetition penalty changes greedy output away from repeats', async () => {
  const model = peakedModel(config);
  const dec = new Decoder(model);
  const o = { temperature: 0, topK: 0, topP: 1, seed: 1, maxTokens: 30 };
  const plain = (await generate(dec, [[1, 5]], o))[0].tokens;
  const pen = (await generate(dec, [[1, 5]], { ...o, repetitionPenalty: 100 }))[0].tokens;
  assert.ok(new Set(pen).size >= new Set(plain).size);
  assert.ok(new Set(pen).size === pen.length || pen.length > 30 - 3, 'a huge penalty avoids repeats');
});
