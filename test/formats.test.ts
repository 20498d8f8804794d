/** Hugging Face and llama2.c formats, conversions between every pair, and the vocabulary tokenizer. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeConfig } from '../src/model/config.js';
import { Llama } from '../src/model/llama.js';
import { createRefBackend } from '../src/kernels/ref.js';
import { Decoder } from '../src/inference/generate.js';
import { readHf, writeHf } from '../src/io/hf.js';
import { readSafetensorsHeader } from '../src/io/safetensors.js';
import { fillModel, permuteRowsForHf } from '../src/io/model-common.js';
import { readLlama2c, writeLlama2c, readLlama2cTokenizer, writeLlama2cTokenizer } from '../src/io/llama2c.js';
import { loadAnyModel, saveModelAs, detectFormat, type ModelFormat } from '../src/io/formats.js';
import { byteVocab, VocabTokenizer, TokenType, type TokenizerVocab } from '../src/tokenizer/vocab.js';
import { UserError } from '../src/util/errors.js';
import { peakedModel } from './helpers/models.js';

const FIXTURE = fileURLToPath(new URL('../../test/fixtures/hf-tiny', import.meta.url));
const tmp = () => mkdtempSync(join(tmpdir(), 'llama-ts-fmt-'));
const be = () => createRefBackend('f32');

function fromSource(src: ReturnType<typeof readHf>): Llama {
  const m = new Llama(src.config, be());
  fillModel(m, src);
  return m;
}

function refLogits() {
  const r = readSafetensorsHeader(join(FIXTURE, 'reference.safetensors'));
  const B = Number(r.metadata.batch);
  const T = Number(r.metadata.seq);
  return { B, T, tokens: Array.from(r.readF32('tokens')), logits: r.readF32('logits') };
}

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

test('HF import: logits match the PyTorch rotate_half reference (q/k un-permuted), and only with the permutation', () => {
  const model = fromSource(readHf(FIXTURE));
  assert.equal(model.config.nKvHeads, 2);
  const { B, T, tokens, logits } = refLogits();
  const dec = new Decoder(model);
  const V = model.config.vocabSize;
  for (let b = 0; b < B; b++) {
    const ours = dec.logitsAll(tokens.slice(b * T, (b + 1) * T));
    const err = maxAbs(ours, logits.subarray(b * T * V, (b + 1) * T * V));
    assert.ok(err <= 1e-4, `sequence ${b}: max |Δlogit| ${err}`);
  }
  // the same weights without the un-permutation give different logits: the test can tell
  const raw = fromSource(readHf(FIXTURE));
  for (const l of raw.layout.layers) {
    const hd = raw.config.dim / raw.config.nHeads;
    raw.params.view(l.wq).set(permuteRowsForHf(raw.params.view(l.wq) as Float32Array, raw.config.nHeads, hd, raw.config.dim, true));
    raw.params.view(l.wk).set(permuteRowsForHf(raw.params.view(l.wk) as Float32Array, raw.config.nKvHeads, hd, raw.config.dim, true));
  }
  assert.ok(maxAbs(new Decoder(raw).logitsAll(tokens.slice(0, T)), logits.subarray(0, T * V)) > 1e-2);
});

test('HF export reproduces the reference files; sharded, f16 and bf16 variants read back', () => {
  const model = fromSource(readHf(FIXTURE));
  const out = join(tmp(), 'hf');
  writeHf(out, model, null);
  const orig = readSafetensorsHeader(join(FIXTURE, 'model.safetensors'));
  const mine = readSafetensorsHeader(join(out, 'model.safetensors'));
  for (const name of orig.tensors.keys()) assert.deepEqual(Array.from(mine.readF32(name)), Array.from(orig.readF32(name)), name);
  const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
  const ref = JSON.parse(readFileSync(join(FIXTURE, 'config.json'), 'utf8'));
  for (const k of ['hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'vocab_size', 'rms_norm_eps', 'rope_theta']) assert.equal(cfg[k], ref[k], k);
  // sharded
  const sh = join(tmp(), 'sharded');
  writeHf(sh, model, null, { maxShardBytes: 20_000 });
  assert.ok(existsSync(join(sh, 'model.safetensors.index.json')));
  assert.ok(readdirSync(sh).filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)).length > 2);
  assert.deepEqual(Array.from(fromSource(readHf(sh)).params.data), Array.from(model.params.data));
  // half precisions
  for (const [dtype, tol] of [['F16', 1e-3], ['BF16', 8e-3]] as const) {
    const d = join(tmp(), dtype);
    writeHf(d, model, null, { dtype });
    assert.equal(readSafetensorsHeader(join(d, 'model.safetensors')).tensors.get('lm_head.weight')!.dtype, dtype);
    const back = fromSource(readHf(d));
    for (let i = 0; i < model.params.data.length; i++) {
      const a = model.params.data[i];
      assert.ok(Math.abs(back.params.data[i] - a) <= tol * Math.max(Math.abs(a), 1e-2), `${dtype} value ${i}: ${back.params.data[i]} vs ${a}`);
    }
  }
});

test('HF: clear errors for other architectures, missing tensors, wrong shapes', () => {
  const d = join(tmp(), 'bad');
  const model = fromSource(readHf(FIXTURE));
  writeHf(d, model, null);
  const cfgPath = join(d, 'config.json');
  const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
  writeFileSync(cfgPath, JSON.stringify({ ...cfg, architectures: ['MistralForCausalLM'] }));
  assert.throws(() => readHf(d), (e: Error) => e instanceof UserError && /MistralForCausalLM is not supported/.test(e.message));
  writeFileSync(cfgPath, JSON.stringify({ ...cfg, num_hidden_layers: 3 }));
  assert.throws(() => readHf(d), /missing tensor 'model.layers.2.input_layernorm.weight'/);
  writeFileSync(cfgPath, JSON.stringify({ ...cfg, intermediate_size: 64 }));
  assert.throws(() => readHf(d), /mlp.gate_proj.weight' has shape \[80,32\] but the config needs \[64,32\]/);
});

test('llama2.c: v0 export/import is exact, header as run.c reads it, size checked; tokenizer.bin round trip', () => {
  const config = makeConfig({ dim: 32, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 300, multipleOf: 16, maxSeqLen: 24 });
  const model = peakedModel(config);
  const dir = tmp();
  const p = join(dir, 'model.bin');
  writeLlama2c(p, model);
  const buf = readFileSync(p);
  assert.deepEqual(Array.from({ length: 7 }, (_, i) => buf.readInt32LE(i * 4)), [32, 96, 2, 4, 2, -300, 24]);
  const back = fromSource(readLlama2c(p));
  assert.deepEqual(back.config, { ...config, multipleOf: 32 });
  assert.deepEqual(Array.from(back.params.data), Array.from(model.params.data));
  writeFileSync(join(dir, 'cut.bin'), buf.subarray(0, buf.length - 4));
  assert.throws(() => readLlama2c(join(dir, 'cut.bin')), (e: Error) => e instanceof UserError && /header implies/.test(e.message));
  const v = byteVocab(300);
  writeLlama2cTokenizer(join(dir, 'tokenizer.bin'), v);
  assert.deepEqual(readLlama2cTokenizer(join(dir, 'tokenizer.bin'), 300), v);
  const words: TokenizerVocab = {
    pieces: ['<unk>', '<s>', '</s>', '▁', 'h', 'e', 'l', 'o', '▁h', 'll', '▁he', 'llo', '▁hello'], scores: [0, 0, 0, -1, -2, -2, -2, -2, -3, -4, -5, -6, -1],
    types: [2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], bos: 1, eos: 2, unk: 0,
  };
  writeLlama2cTokenizer(join(dir, 'w.bin'), words);
  const wb = readFileSync(join(dir, 'w.bin'));
  assert.ok(wb.includes(Buffer.from(' hello')), 'llama2.c stores spaces, not ▁');
  assert.deepEqual(readLlama2cTokenizer(join(dir, 'w.bin'), words.pieces.length), words);
});

test('llama2.c tokenizer.bin read lazily: pieces one at a time, the tokenizer over it encodes and decodes as over the full list', () => {
  const bytes = Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
  const words = ['▁', 'h', 'e', 'l', 'o', '▁h', 'll', '▁he', 'llo', '▁hello', '▁naïve', 'é', '▁wörld', '<tag>', '\n', '▁a▁b'];
  const eager: TokenizerVocab = {
    pieces: ['<unk>', '<s>', '</s>', ...bytes, ...words, '<unused0>'],
    scores: [0, 0, 0, ...bytes.map(() => 0), ...words.map((_, i) => -i - 0.5), 0],
    types: [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL, ...bytes.map(() => TokenType.BYTE), ...words.map(() => TokenType.NORMAL), TokenType.UNUSED],
    bos: 1, eos: 2, unk: 0,
  };
  const path = join(tmp(), 'tokenizer.bin');
  writeLlama2cTokenizer(path, eager);
  const lazy = readLlama2cTokenizer(path, eager.pieces.length);
  assert.equal(typeof lazy.piece, 'function');
  for (let i = 0; i < eager.pieces.length; i++) assert.equal(lazy.piece?.(i), eager.pieces[i], `piece ${i}`);
  const a = new VocabTokenizer(readLlama2cTokenizer(path, eager.pieces.length));
  const b = new VocabTokenizer(eager);
  const ids = [262, 259 + words.indexOf('▁naïve'), 3 + 0xc3, 3 + 0xa9, 259 + words.indexOf('▁wörld'), 259 + words.indexOf('<tag>'), 1, 2, 259 + words.indexOf('▁a▁b')];
  assert.equal(a.decode(ids), b.decode(ids)); // decoding first: no piece list built yet
  assert.equal(a.decode(ids), 'l naïveé wörld<tag> a b');
  for (const text of ['hello', 'hello naïve wörld', 'héllo\n<tag>', 'zz']) assert.deepEqual(a.encode(text), b.encode(text), text);
  // the vocabulary as JSON (a run's tokenizer.vocab.json) holds every piece
  assert.deepEqual(JSON.parse(JSON.stringify(lazy)), eager);
  assert.deepEqual({ ...lazy }, eager);
});

test('vocabulary tokenizer: score-driven merges, byte fallback, decode', () => {
  const pieces = ['<unk>', '<s>', '</s>', ...Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`), '▁', 'h', 'e', 'l', 'o', '▁h', 'll', '▁he', 'llo', '▁hello'];
  const types = pieces.map((p, i) => (i === 0 ? TokenType.UNKNOWN : i < 3 ? TokenType.CONTROL : i < 259 ? TokenType.BYTE : TokenType.NORMAL));
  const scores = pieces.map((_, i) => (i < 259 ? 0 : -(i - 258)));
  scores[pieces.indexOf('▁hello')] = 0;
  const t = new VocabTokenizer({ pieces, scores, types, bos: 1, eos: 2, unk: 0 });
  assert.deepEqual(t.encode('hello').map((i) => pieces[i]), ['▁hello']);
  const ids = t.encode('hello é');
  assert.deepEqual(ids.map((i) => pieces[i]), ['▁hello', '▁', '<0xC3>', '<0xA9>']);
  assert.equal(t.decode(ids), ' hello é');
});

test('convert: every format to every other keeps the weights exactly (f32) and the byte tokenizer', () => {
  const config = makeConfig({ dim: 32, nLayers: 1, nHeads: 4, nKvHeads: 2, vocabSize: 259, multipleOf: 32, maxSeqLen: 16 });
  const model = peakedModel(config);
  const dir = tmp();
  saveModelAs('ckpt', join(dir, 'ck'), model, null);
  const order: ModelFormat[] = ['ckpt', 'gguf', 'hf', 'llama2c', 'ckpt', 'hf', 'gguf', 'llama2c', 'gguf', 'ckpt', 'llama2c', 'hf', 'ckpt'];
  let from = join(dir, 'ck');
  for (let i = 1; i < order.length; i++) {
    const loaded = loadAnyModel(from, be());
    assert.equal(loaded.format, order[i - 1]);
    assert.equal(detectFormat(from), order[i - 1]);
    assert.deepEqual(Array.from(loaded.model.params.data), Array.from(model.params.data), `${order[i - 1]} → ${order[i]}`);
    assert.equal(loaded.tokenizer.decode(loaded.tokenizer.encode('héllo')), 'héllo');
    const to = order[i] === 'ckpt' ? join(dir, `ck${i}`) : order[i] === 'hf' ? join(dir, `hf${i}`) : order[i] === 'gguf' ? join(dir, `m${i}.gguf`) : join(dir, `l2c${i}`, 'model.bin');
    saveModelAs(order[i], to, loaded.model, loaded.vocab);
    from = to;
  }
});

test('a model without a readable tokenizer loads; text is refused with a clear message, ids work', () => {
  const loaded = loadAnyModel(FIXTURE, be());
  assert.equal(loaded.vocab, null);
  assert.throws(() => loaded.tokenizer.encode('hi'), (e: Error) => e instanceof UserError && /has no tokenizer llama-ts can read.*--ids/.test(e.message));
  assert.equal(loaded.tokenizer.decode([5, 7]), '<5><7>');
});
