/**
 * Issue 17, file formats: each numbered item's regression (small generated inputs; big headers built here, fast).
 * 1 layer counts checked against the file first; 2 linear header checks and caps; 7 one-line escaped messages;
 * 8 non-finite weights named at load; 9 exact sizes (safetensors, GGUF data section, llama2.c).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync, writeSync, ftruncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeConfig } from '../src/model/config.js';
import { Llama } from '../src/model/llama.js';
import { createRefBackend } from '../src/kernels/ref.js';
import { readGguf, GGUF_MAGIC, GgufValueType as T } from '../src/io/gguf.js';
import { readSafetensorsHeader, writeSafetensors } from '../src/io/safetensors.js';
import { readLlamaGguf, writeLlamaGguf } from '../src/io/gguf-llama.js';
import { readHf, writeHf } from '../src/io/hf.js';
import { readLlama2c, writeLlama2c } from '../src/io/llama2c.js';
import { openCheckpoint } from '../src/io/checkpoint.js';
import { loadAnyModel, saveModelAs } from '../src/io/formats.js';
import { fillModel } from '../src/io/model-common.js';
import { byteVocab } from '../src/tokenizer/vocab.js';
import { UserError, quoted } from '../src/util/errors.js';
import { peakedModel } from './helpers/models.js';
import { failsWithOneLine } from './helpers/cli.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'llama-ts-harden-'));
const config = makeConfig({ dim: 32, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 259, multipleOf: 16, maxSeqLen: 32 });
const ref = createRefBackend('f32');

/** fn throws a UserError whose message is one line matching re, within `ms`. */
function failsFast(fn: () => unknown, re: RegExp, ms = 3000): void {
  const t0 = performance.now();
  assert.throws(fn, (e: Error) => {
    assert.ok(e instanceof UserError, `not a UserError: ${e.stack}`);
    assert.ok(!/[\n\r\x1b]/.test(e.message), `not one clean line: ${JSON.stringify(e.message)}`);
    assert.match(e.message, re);
    return true;
  });
  const dt = performance.now() - t0;
  assert.ok(dt < ms, `took ${dt.toFixed(0)} ms`);
}

test('1: layer counts from HF config.json, llama2.c header, checkpoint state.json and GGUF are checked against the file first', () => {
  const dir = tmp();
  const model = peakedModel(config);
  const hf = join(dir, 'hf');
  writeHf(hf, model, null);
  const cfg = JSON.parse(readFileSync(join(hf, 'config.json'), 'utf8'));
  writeFileSync(join(hf, 'config.json'), JSON.stringify({ ...cfg, num_hidden_layers: 1e8 }));
  failsFast(() => readHf(hf), /100000000 layers need at least 900000002 tensors but the file lists 21/);

  const bin = join(dir, 'm.bin');
  writeLlama2c(bin, model);
  const b = readFileSync(bin);
  b.writeInt32LE(1e8, 8);
  writeFileSync(bin, b);
  failsFast(() => readLlama2c(bin), /header implies \d+ bytes but the file has/);

  const ck = join(dir, 'ck');
  saveModelAs('ckpt', ck, model, null);
  const state = JSON.parse(readFileSync(join(ck, 'state.json'), 'utf8'));
  writeFileSync(join(ck, 'state.json'), JSON.stringify({ ...state, config: { ...state.config, nLayers: 2 ** 31 } }));
  failsFast(() => openCheckpoint(ck), /2147483648 layers need at least/);

  const g = join(dir, 'm.gguf');
  writeLlamaGguf(g, model, byteVocab(259), 'f32');
  const gb = readFileSync(g);
  const at = gb.indexOf('llama.block_count') + 'llama.block_count'.length + 4;
  gb.writeUInt32LE(1e8, at);
  writeFileSync(g, gb);
  failsFast(() => readLlamaGguf(g), /100000000 layers need at least/);
});

/** A GGUF whose tensors are `n` 1-D F32 tensors of 8 values named t0, t1, …; `dupLast` renames the last as t0. */
function manyTensorGguf(path: string, n: number, dupLast: boolean): void {
  const names = Array.from({ length: n }, (_, i) => (dupLast && i === n - 1 ? 't0' : `t${i}`));
  const infoBytes = names.reduce((a, s) => a + 8 + s.length + 4 + 8 + 4 + 8, 0);
  const head = Buffer.alloc(24 + infoBytes);
  let p = 0;
  head.writeUInt32LE(GGUF_MAGIC, p); head.writeUInt32LE(3, p + 4); head.writeBigUInt64LE(BigInt(n), p + 8); head.writeBigUInt64LE(0n, p + 16);
  p = 24;
  names.forEach((s, i) => {
    head.writeBigUInt64LE(BigInt(s.length), p); p += 8;
    p += head.write(s, p, 'latin1');
    head.writeUInt32LE(1, p); p += 4;
    head.writeBigUInt64LE(8n, p); p += 8;
    head.writeUInt32LE(0, p); p += 4;
    head.writeBigUInt64LE(BigInt(i * 32), p); p += 8;
  });
  const dataStart = Math.ceil(head.length / 32) * 32;
  const fd = openSync(path, 'w');
  writeSync(fd, head);
  ftruncateSync(fd, dataStart + n * 32);
  closeSync(fd);
}

test('2: GGUF with 100k tensor entries is checked in linear time; counts, arrays and names are capped', () => {
  const dir = tmp();
  const p = join(dir, 'many.gguf');
  manyTensorGguf(p, 100_000, true);
  failsFast(() => readGguf(p), /tensor 't0' appears twice/, 5000);
  manyTensorGguf(p, 100_000, false);
  const t0 = performance.now();
  assert.equal(readGguf(p).tensors.size, 100_000);
  assert.ok(performance.now() - t0 < 5000);
  manyTensorGguf(p, 200_000, false);
  failsFast(() => readGguf(p), /200000 tensors \(at most 131072 are read\)/, 5000);

  // a 50 MB metadata array (u8): refused by its count before 50M values are built
  const arr = join(dir, 'arr.gguf');
  const key = 'x.big';
  const h = Buffer.alloc(24 + 8 + key.length + 4 + 4 + 8);
  h.writeUInt32LE(GGUF_MAGIC, 0); h.writeUInt32LE(3, 4); h.writeBigUInt64LE(0n, 8); h.writeBigUInt64LE(1n, 16);
  let q = 24;
  h.writeBigUInt64LE(BigInt(key.length), q); q += 8; q += h.write(key, q, 'latin1');
  h.writeUInt32LE(T.ARRAY, q); q += 4; h.writeUInt32LE(T.UINT8, q); q += 4; h.writeBigUInt64LE(50_000_000n, q);
  const fd = openSync(arr, 'w');
  writeSync(fd, h);
  ftruncateSync(fd, h.length + 50_000_000);
  closeSync(fd);
  failsFast(() => readGguf(arr), /metadata array of 50000000 values \(at most \d+ are read\)/);

  // a safetensors header of 100k entries: counted before it is parsed
  const st = join(dir, 'many.safetensors');
  const parts: string[] = [];
  for (let i = 0; i < 100_000; i++) parts.push(`"t${i}":{"dtype":"F32","shape":[1],"data_offsets":[${4 * i},${4 * i + 4}]}`);
  const json = Buffer.from(`{${parts.join(',')}}`);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(st, Buffer.concat([len, json, Buffer.alloc(400_000)]));
  failsFast(() => readSafetensorsHeader(st), /describes 100000 tensors \(at most 65536 are read\)/);
});

test('7: messages are one line; untrusted bytes (a terminal escape in checkpoints/latest) are escaped and cut', () => {
  const dir = tmp();
  const run = join(dir, 'run');
  mkdirSync(join(run, 'checkpoints'), { recursive: true });
  writeFileSync(join(run, 'checkpoints', 'latest'), '\x1b[2J\x1b]0;pwned\x07step-1\nline two' + 'x'.repeat(5000));
  failsFast(() => openCheckpoint(run), /checkpoint pointer .* is corrupt: it holds '\\x1b\[2J\\x1b\]0;pwned\\x07step-1\\nline twox*…'/);
  assert.equal(new UserError('a\nb\u202ec').message, 'a\\nb\\u202ec');
  assert.ok(new UserError('y'.repeat(10_000)).message.length <= 1000);
  assert.equal(quoted('abc\x1b', 2), "'ab…'");
  failsWithOneLine(['info', '--checkpoint', run], /it holds '\\x1b\[2J/);
});

test('8: a non-finite weight (a block of 0xFF bytes in a GGUF) is named at load', () => {
  const dir = tmp();
  const g = join(dir, 'm.gguf');
  writeLlamaGguf(g, peakedModel(config), byteVocab(259), 'f32');
  const f = readGguf(g);
  const t = f.tensors.get('blk.1.ffn_down.weight')!;
  const b = readFileSync(g);
  b.fill(0xff, f.dataStart + t.offset + 40, f.dataStart + t.offset + 72);
  writeFileSync(g, b);
  failsFast(() => loadAnyModel(g, ref), /tensor 'layers\.1\.feed_forward\.w2\.weight' holds a non-finite value \(NaN at index 10\)/);
  failsWithOneLine(['score', '--model', g, '--text', 'hello'], /non-finite value/);
});

test('9: sizes are exact — safetensors with inserted or trailing bytes, GGUF with trailing bytes, llama2.c with extra bytes', () => {
  const dir = tmp();
  const model = peakedModel(config);
  const s = join(dir, 'm.safetensors');
  writeSafetensors(s, model.layout.tensors.map((t) => ({ name: t.name, shape: t.shape, data: model.params.view(t) as Float32Array })));
  const sb = readFileSync(s);
  const mid = 8 + Number(sb.readBigUInt64LE(0)) + 4000;
  writeFileSync(s, Buffer.concat([sb.subarray(0, mid), Buffer.alloc(44, 7), sb.subarray(mid)]));
  failsFast(() => readSafetensorsHeader(s), /cover \d+ data bytes but the file has \d+ after the header \(trailing or inserted bytes\)/);
  writeFileSync(s, Buffer.concat([sb, Buffer.from('junk')]));
  failsFast(() => readSafetensorsHeader(s), /trailing or inserted bytes/);
  writeFileSync(s, sb);
  assert.equal(readSafetensorsHeader(s).tensors.size, model.layout.tensors.length);

  const g = join(dir, 'm.gguf');
  writeLlamaGguf(g, model, byteVocab(259), 'f32');
  const gb = readFileSync(g);
  writeFileSync(g, Buffer.concat([gb, Buffer.alloc(64)]));
  failsFast(() => readGguf(g), /trailing or inserted bytes/);

  const bin = join(dir, 'm.bin');
  writeLlama2c(bin, model);
  writeFileSync(bin, Buffer.concat([readFileSync(bin), Buffer.alloc(8)]));
  failsFast(() => readLlama2c(bin), /header implies \d+ bytes but the file has \d+ \(extra bytes/);
  // the good files still load
  const m = new Llama(config, ref);
  fillModel(m, readLlamaGguf(join(dir, 'ok.gguf') === g ? g : (writeLlamaGguf(join(dir, 'ok.gguf'), model, byteVocab(259), 'f32'), join(dir, 'ok.gguf'))));
});
