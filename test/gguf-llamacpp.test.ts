/**
 * Acceptance: llama.cpp (node-llama-cpp 3.21.1, CPU, from tools/llama-cpp-peer) loads our GGUF export and its
 * next-token probabilities over the whole vocabulary match ours within 1e-4 at every position of a prompt
 * (F32 weights, F32 KV cache, one thread); greedy continuations are identical.
 *
 * Flash attention is turned off on the llama.cpp side: its CPU flash-attention path rounds through half precision
 * (probability errors ~2e-4 even with an F32 cache); with the standard attention path the two agree to ~1e-7.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeConfig } from '../src/model/config.js';
import { Llama } from '../src/model/llama.js';
import { createRefBackend } from '../src/kernels/ref.js';
import { Decoder, generate } from '../src/inference/generate.js';
import { writeLlamaGguf, readLlamaGguf, type GgufExportType } from '../src/io/gguf-llama.js';
import { fillModel } from '../src/io/model-common.js';
import { byteVocab, VocabTokenizer, TokenType, tokenizerFromVocab } from '../src/tokenizer/vocab.js';
import { ByteTokenizer } from '../src/tokenizer/bytes.js';
import { logSoftmax } from '../src/inference/sampler.js';
import { loadLlamaCpp, cpuLlama, PEER_MISSING, type NodeLlamaCpp } from '../bench/llamacpp.js';
import { peakedModel } from './helpers/models.js';

const peer = await loadLlamaCpp();
const skip = peer ? false : PEER_MISSING;

const config = makeConfig({ dim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 259, multipleOf: 16, maxSeqLen: 64 });
const PROMPT = [1, 72, 101, 108, 108, 111, 35, 119, 111, 114, 108, 100, 36, 3, 258, 120];

async function llamaCppRun(llama: NodeLlamaCpp, path: string, toks: number[], greedyTokens: number) {
  const lm = await llama.loadModel({ modelPath: path });
  try {
    const ctx = await lm.createContext({
      contextSize: config.maxSeqLen, threads: 1, flashAttention: false,
      experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32',
    });
    try {
      const seq = ctx.getSequence();
      const res = await seq.controlledEvaluate(toks.map((t) => [t, { generateNext: { probabilities: true } }]));
      const probs: Map<number, number>[] = res.map((r: { next: { probabilities: Map<number, number> } }) => r.next.probabilities);
      await seq.clearHistory();
      const greedy: number[] = [];
      for await (const t of seq.evaluate(toks, { temperature: 0 })) {
        greedy.push(t);
        if (greedy.length >= greedyTokens) break;
      }
      return { probs, greedy };
    } finally {
      await ctx.dispose();
    }
  } finally {
    await lm.dispose();
  }
}

function compare(model: Llama, probs: Map<number, number>[], toks: number[]): number {
  const ours = new Decoder(model).logitsAll(toks);
  const V = config.vocabSize;
  let worst = 0;
  for (let i = 0; i < toks.length; i++) {
    const lp = logSoftmax(ours.subarray(i * V, (i + 1) * V));
    assert.equal(probs[i].size, V, `llama.cpp returned ${probs[i].size} probabilities at position ${i}`);
    for (let v = 0; v < V; v++) worst = Math.max(worst, Math.abs(Math.exp(lp[v]) - (probs[i].get(v) ?? NaN)));
  }
  return worst;
}

test('llama.cpp loads our F32 GGUF: whole-vocabulary probabilities within 1e-4 at every position, same greedy text', { skip, timeout: 120_000 }, async () => {
  const model = peakedModel(config, 7);
  const path = join(mkdtempSync(join(tmpdir(), 'llama-ts-gguf-')), 'model-f32.gguf');
  writeLlamaGguf(path, model, byteVocab(config.vocabSize), 'f32');
  const llama = await cpuLlama(peer);
  try {
    const n = 24;
    const { probs, greedy } = await llamaCppRun(llama, path, PROMPT, n);
    const worst = compare(model, probs, PROMPT);
    assert.ok(worst <= 1e-4, `max |Δp| ${worst}`);
    const ours = await generate(new Decoder(model), [PROMPT], { temperature: 0, topK: 0, topP: 1, seed: 1, maxTokens: n });
    assert.deepEqual(ours[0].tokens, greedy);
  } finally {
    await llama.dispose();
  }
});

for (const [type, tol] of [['f16', 5e-3], ['q8_0', 2e-2]] as [GgufExportType, number][]) {
  test(`llama.cpp loads our ${type} GGUF and agrees with our reading of the same file (|Δp| <= ${tol})`, { skip, timeout: 120_000 }, async () => {
    const model = peakedModel(config, 8);
    const path = join(mkdtempSync(join(tmpdir(), 'llama-ts-gguf-')), `model-${type}.gguf`);
    writeLlamaGguf(path, model, byteVocab(config.vocabSize), type);
    const back = new Llama(config, createRefBackend('f32'));
    fillModel(back, readLlamaGguf(path));
    const llama = await cpuLlama(peer);
    try {
      const { probs } = await llamaCppRun(llama, path, PROMPT, 1);
      const worst = compare(back, probs, PROMPT);
      assert.ok(worst <= tol, `max |Δp| ${worst}`);
    } finally {
      await llama.dispose();
    }
  });
}

test('llama.cpp tokenizes like our SentencePiece-style vocabulary from the exported tokenizer metadata', { skip, timeout: 60_000 }, async () => {
  const extra = ['▁', 'h', 'e', 'l', 'o', 'w', 'r', 'd', '▁h', 'll', 'he', '▁he', 'llo', '▁hello', '▁w', 'or', '▁wor', 'ld', '▁world', 'é'];
  const v = byteVocab(259);
  const vocab = { ...v, pieces: [...v.pieces, ...extra], scores: [...v.scores, ...extra.map((_, i) => -i)], types: [...v.types, ...extra.map(() => TokenType.NORMAL)] };
  const cfg = makeConfig({ dim: 64, nLayers: 1, nHeads: 4, vocabSize: vocab.pieces.length, multipleOf: 16, maxSeqLen: 64 });
  const path = join(mkdtempSync(join(tmpdir(), 'llama-ts-gguf-')), 'tok.gguf');
  writeLlamaGguf(path, peakedModel(cfg), vocab, 'f32');
  const ours = new VocabTokenizer(vocab);
  assert.ok(!(tokenizerFromVocab(vocab) instanceof ByteTokenizer));
  const llama = await cpuLlama(peer);
  try {
    const lm = await llama.loadModel({ modelPath: path });
    try {
      for (const text of ['hello world', 'héllo wörld!', ' hello  world\n', 'dr', 'world hello']) {
        assert.deepEqual(ours.encode(text), Array.from(lm.tokenize(text) as number[]), JSON.stringify(text));
      }
    } finally {
      await lm.dispose();
    }
  } finally {
    await llama.dispose();
  }
});
