/** GGUF: round trips, half/Q8_0 encodings, and a reader that rejects bad files with clear messages (fuzzed). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeConfig } from '../src/model/config.js';
import { Llama } from '../src/model/llama.js';
import { createRefBackend } from '../src/kernels/ref.js';
import { readGguf, writeGguf, f32ToF16, GgufValueType as T, encodeTensor, ggufFromBytes } from '../src/io/gguf.js';
import { llamaGgufSource } from '../src/io/gguf-model.js';
import { f16ToF32, readSafetensorsHeader, writeSafetensors } from '../src/io/safetensors.js';
import { writeLlamaGguf, readLlamaGguf } from '../src/io/gguf-llama.js';
import { fillModel } from '../src/io/model-common.js';
import { byteVocab } from '../src/tokenizer/vocab.js';
import { UserError } from '../src/util/errors.js';
import { Rng } from '../src/util/rng.js';
import { peakedModel } from './helpers/models.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'llama-ts-gguf-'));
const config = makeConfig({ dim: 32, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 259, multipleOf: 16, maxSeqLen: 32 });

function load(path: string): Llama {
  const src = readLlamaGguf(path);
  const m = new Llama(src.config, createRefBackend('f32'));
  fillModel(m, src, { dequantize: true });
  return m;
}

test('F32 export → import is exact, config and tokenizer survive; metadata layout as llama.cpp expects', () => {
  const model = peakedModel(config);
  const path = join(tmp(), 'm.gguf');
  writeLlamaGguf(path, model, byteVocab(259), 'f32');
  const f = readGguf(path);
  assert.equal(f.version, 3);
  assert.equal(f.metadata.get('general.architecture'), 'llama');
  assert.equal(f.dataStart % 32, 0);
  const q = f.tensors.get('blk.1.attn_k.weight')!;
  assert.deepEqual(q.ne, [32, 16], 'ne[0] is the input dimension (reversed order)');
  assert.equal(q.offset % 32, 0);
  assert.equal((f.metadata.get('tokenizer.ggml.tokens') as string[])[3 + 10], '<0x0A>');
  const back = load(path);
  assert.deepEqual(back.config, config);
  assert.deepEqual(Array.from(back.params.data), Array.from(model.params.data));
  const src = readLlamaGguf(path);
  assert.deepEqual(src.vocab, byteVocab(259));
});

test('F16 and Q8_0 exports dequantise within their precision', () => {
  const model = peakedModel(config);
  for (const [type, tol] of [['f16', 1e-3], ['bf16', 8e-3], ['q8_0', 1.5e-2]] as const) {
    const path = join(tmp(), `m-${type}.gguf`);
    writeLlamaGguf(path, model, byteVocab(259), type);
    const back = load(path);
    for (const t of model.layout.tensors) {
      const a = model.params.view(t);
      const b = back.params.view(t);
      let amax = 0;
      let err = 0;
      for (let i = 0; i < a.length; i++) {
        amax = Math.max(amax, Math.abs(a[i]));
        err = Math.max(err, Math.abs(a[i] - b[i]));
      }
      assert.ok(err <= tol * amax, `${type} ${t.name}: max err ${err} vs max |w| ${amax}`);
    }
  }
});

test('f32 → f16 rounds to nearest even and round-trips every half value', () => {
  for (let h = 0; h < 0x10000; h++) {
    const v = f16ToF32(h);
    if (Number.isNaN(v)) continue;
    assert.equal(f32ToF16(v), h, `half 0x${h.toString(16)}`);
  }
  assert.equal(f32ToF16(1 + 2 ** -11), 0x3c00); // tie → even
  assert.equal(f32ToF16(1 + 3 * 2 ** -11), 0x3c02);
  assert.equal(f32ToF16(1e6), 0x7c00);
  const q = encodeTensor(Float32Array.from({ length: 32 }, (_, i) => i - 16), 'Q8_0');
  assert.equal(q.length, 34);
  assert.equal(q.readInt8(2), -127); // -16 / (16/127)
});

test('metadata of every value type round-trips', () => {
  const path = join(tmp(), 'kv.gguf');
  writeGguf(path, [
    { key: 'a.u8', type: T.UINT8, value: 200 }, { key: 'a.i8', type: T.INT8, value: -5 }, { key: 'a.u16', type: T.UINT16, value: 65000 },
    { key: 'a.i16', type: T.INT16, value: -300 }, { key: 'a.u32', type: T.UINT32, value: 4e9 }, { key: 'a.i32', type: T.INT32, value: -7 },
    { key: 'a.f32', type: T.FLOAT32, value: 0.5 }, { key: 'a.b', type: T.BOOL, value: true }, { key: 'a.s', type: T.STRING, value: 'héllo' },
    { key: 'a.u64', type: T.UINT64, value: 2 ** 40 }, { key: 'a.i64', type: T.INT64, value: -(2 ** 40) }, { key: 'a.f64', type: T.FLOAT64, value: 0.1 },
    { key: 'a.arr', type: T.ARRAY, elemType: T.STRING, value: ['x', 'yz'] }, { key: 'a.arr2', type: T.ARRAY, elemType: T.INT32, value: [1, -2, 3] },
  ], [{ name: 't', shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]), type: 'F32' }]);
  const f = readGguf(path);
  assert.deepEqual(Object.fromEntries(f.metadata), {
    'a.u8': 200, 'a.i8': -5, 'a.u16': 65000, 'a.i16': -300, 'a.u32': 4e9, 'a.i32': -7, 'a.f32': 0.5, 'a.b': true, 'a.s': 'héllo',
    'a.u64': 2 ** 40, 'a.i64': -(2 ** 40), 'a.f64': 0.1, 'a.arr': ['x', 'yz'], 'a.arr2': [1, -2, 3],
  });
  assert.deepEqual(Array.from(f.readF32('t')), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(f.tensors.get('t')!.ne, [3, 2]);
});

/** Finds the tensor-info record of `name` and returns the byte offset of its type field. */
function typeFieldOffset(buf: Buffer, name: string, nDims: number): number {
  const at = buf.indexOf(Buffer.from(name, 'utf8'));
  assert.ok(at > 0);
  return at + name.length + 4 + 8 * nDims;
}

test('bad GGUF files: clear messages naming the problem', () => {
  const model = peakedModel(config);
  const dir = tmp();
  const good = join(dir, 'good.gguf');
  writeLlamaGguf(good, model, byteVocab(259), 'f32');
  const bytes = readFileSync(good);
  const bad = join(dir, 'bad.gguf');
  const expectErr = (buf: Buffer, re: RegExp) => {
    writeFileSync(bad, buf);
    assert.throws(() => { const s = readLlamaGguf(bad); fillModel(new Llama(s.config, createRefBackend('f32')), s); }, (e: Error) => e instanceof UserError && re.test(e.message), re.source);
  };
  expectErr(bytes.subarray(0, bytes.length - 10), /truncated/);
  expectErr(bytes.subarray(0, 2), /truncated/);
  expectErr(Buffer.concat([Buffer.from('GGML'), bytes.subarray(4)]), /not a GGUF file/);
  const v = Buffer.from(bytes); v.writeUInt32LE(9, 4); expectErr(v, /unsupported GGUF version 9/);
  const huge = Buffer.from(bytes); huge.writeBigUInt64LE(1n << 40n, 16); expectErr(huge, /cannot fit/);
  // unknown / unsupported quantisation type
  const q = Buffer.from(bytes); q.writeUInt32LE(3, typeFieldOffset(q, 'blk.0.attn_q.weight', 2)); expectErr(q, /type Q4_1/);
  const u = Buffer.from(bytes); u.writeUInt32LE(999, typeFieldOffset(u, 'blk.0.attn_q.weight', 2)); expectErr(u, /unknown type 999/);
  // overlapping tensors: point a tensor's offset at the first tensor's data
  const o = Buffer.from(bytes); o.writeBigUInt64LE(0n, typeFieldOffset(o, 'blk.0.attn_k.weight', 2) + 4); expectErr(o, /overlap/);
  // unaligned offset
  const a = Buffer.from(bytes); a.writeBigUInt64LE(3n, typeFieldOffset(a, 'blk.0.attn_k.weight', 2) + 4); expectErr(a, /not aligned/);
  // unsupported architecture, missing tensor, shape disagreeing with the config
  const arch = Buffer.from(bytes); arch.write('gpt2 ', arch.indexOf('llama', arch.indexOf('general.architecture')), 'latin1');
  expectErr(Buffer.from(arch.toString('latin1').replace('gpt2 ', 'gpt2x'), 'latin1'), /architecture 'gpt2x' is not supported/);
  const miss = Buffer.from(bytes); miss.write('X', miss.indexOf('blk.1.ffn_up.weight'), 'latin1'); expectErr(miss, /missing tensor 'blk.1.ffn_up.weight'/);
  const dims = Buffer.from(bytes); const off = typeFieldOffset(dims, 'blk.0.attn_k.weight', 2) - 16; dims.writeBigUInt64LE(16n, off); dims.writeBigUInt64LE(32n, off + 8);
  expectErr(dims, /attn_k.weight' has shape \[32,16\] but the config needs \[16,32\]/);
});

test('fuzz: truncations and random corruption of GGUF and safetensors give UserError or a valid read, never a crash', () => {
  const model = peakedModel(makeConfig({ dim: 32, nLayers: 1, nHeads: 2, vocabSize: 259, multipleOf: 16, maxSeqLen: 16 }));
  const dir = tmp();
  const g = join(dir, 'g.gguf');
  writeLlamaGguf(g, model, byteVocab(259), 'q8_0');
  const s = join(dir, 's.safetensors');
  writeSafetensors(s, model.layout.tensors.map((t) => ({ name: t.name, shape: t.shape, data: model.params.view(t) as Float32Array })));
  const rng = new Rng(42);
  const bad = join(dir, 'bad');
  let userErrors = 0;
  for (const [file, read] of [
    [g, (p: string) => { const m = readLlamaGguf(p); for (const t of model.layout.tensors) m.tensor(t.name); }],
    [s, (p: string) => { const f = readSafetensorsHeader(p); for (const n of f.tensors.keys()) f.readF32(n); }],
  ] as [string, (p: string) => void][]) {
    const bytes = readFileSync(file);
    const headerEnd = file.endsWith('.gguf') ? readGguf(file).dataStart : 8 + Number(bytes.readBigUInt64LE(0));
    const trials: Buffer[] = [];
    for (let n = 0; n < headerEnd + 64; n += 1 + rng.int(13)) trials.push(bytes.subarray(0, n));
    for (let i = 0; i < 600; i++) {
      const b = Buffer.from(bytes);
      const flips = 1 + rng.int(4);
      for (let k = 0; k < flips; k++) {
        const at = rng.int(headerEnd);
        b[at] = rng.int(4) === 0 ? 0xff : rng.int(256);
      }
      trials.push(b);
    }
    for (const t of trials) {
      writeFileSync(bad, t);
      try {
        read(bad);
      } catch (e) {
        if (!(e instanceof UserError)) throw new Error(`${file}: ${t.length}-byte input raised ${(e as Error).stack}`);
        userErrors++;
      }
    }
  }
  assert.ok(userErrors > 300);
});

test('the page reads GGUF bytes with the same parser: same header, tensors of every type and errors as readGguf', () => {
  const model = peakedModel(config);
  const dir = tmp();
  for (const type of ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_k'] as const) {
    const path = join(dir, `m-${type}.gguf`);
    writeLlamaGguf(path, model, byteVocab(259), type);
    const a = readGguf(path), b = ggufFromBytes(new Uint8Array(readFileSync(path)), path);
    assert.deepEqual([...b.metadata], [...a.metadata]);
    assert.deepEqual([...b.tensors], [...a.tensors]);
    assert.equal(b.dataStart, a.dataStart);
    for (const n of a.tensors.keys()) assert.deepEqual(b.readF32(n), a.readF32(n), `${type} ${n}`);
    const sa = readLlamaGguf(path), sb = llamaGgufSource(b);
    assert.deepEqual(sb.config, sa.config);
    assert.deepEqual(sb.vocab, sa.vocab);
  }
  // truncations and corruptions: the same message (or the same success) either way
  const path = join(dir, 'm-q8_0.gguf');
  const bytes = readFileSync(path);
  const bad = join(dir, 'bad.gguf');
  const rng = new Rng(7);
  const outcome = (read: () => unknown) => {
    try {
      read();
      return 'ok';
    } catch (e) {
      if (!(e instanceof UserError)) throw e;
      return e.message;
    }
  };
  const headerEnd = readGguf(path).dataStart;
  const trials: Buffer[] = [];
  for (let n = 0; n < bytes.length; n += 1 + rng.int(n < headerEnd ? 29 : 997)) trials.push(bytes.subarray(0, n));
  for (let i = 0; i < 100; i++) {
    const t = Buffer.from(bytes);
    t[rng.int(headerEnd)] = rng.int(256);
    trials.push(t);
  }
  for (const t of trials) {
    writeFileSync(bad, t);
    const viaPath = outcome(() => { const s = readLlamaGguf(bad); for (const x of model.layout.tensors) s.tensor(x.name); });
    const viaBytes = outcome(() => { const s = llamaGgufSource(ggufFromBytes(new Uint8Array(t), bad)); for (const x of model.layout.tensors) s.tensor(x.name); });
    assert.equal(viaBytes, viaPath, `${t.length} bytes`);
  }
});

test('bad safetensors: header beyond the file, overlapping offsets, unknown dtype — one clear message each', () => {
  const dir = tmp();
  const p = join(dir, 'x.safetensors');
  const mk = (header: object, dataBytes: number, hlenOverride?: bigint) => {
    const json = Buffer.from(JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(hlenOverride ?? BigInt(json.length));
    writeFileSync(p, Buffer.concat([len, json, Buffer.alloc(dataBytes)]));
  };
  const expect = (re: RegExp) => assert.throws(() => { const f = readSafetensorsHeader(p); for (const n of f.tensors.keys()) f.readF32(n); }, (e: Error) => e instanceof UserError && re.test(e.message), re.source);
  mk({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, 8, 1n << 40n);
  expect(/header length \d+ exceeds the file/);
  mk({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, 12);
  expect(/overlap/);
  mk({ a: { dtype: 'Q4', shape: [2], data_offsets: [0, 8] } }, 8);
  expect(/unsupported dtype 'Q4'/);
  mk({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, 8);
  expect(/truncated/);
  mk({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8);
  expect(/does not match its 8 data bytes/);
});
