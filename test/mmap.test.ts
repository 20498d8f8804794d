/**
 * Memory-mapped model loading (util/mmap.ts, native/mmap.cc, io/formats.ts loadAnyModel weights: 'map'):
 * the mapped and read paths give identical logits in every format; F32 weights are used in place (no copy) and only
 * converted tensors are copied; a truncated file is refused before it is mapped; a file truncated while mapped does
 * not crash the process (the bus error becomes zeros, the next decode step stops with one line); a mapped model
 * cannot be trained; without the addon the read path is used.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeConfig } from '../src/model/config.js';
import { loadAnyModel, saveModelAs, type ModelFormat } from '../src/io/formats.js';
import { Decoder } from '../src/inference/generate.js';
import { openModelFile } from '../src/util/mmap.js';
import { UserError } from '../src/util/errors.js';
import { inferenceMemory } from '../src/model/memory.js';
import { createRefBackend } from '../src/kernels/ref.js';
import { skip, native } from './helpers/native.js';
import { peakedModel } from './helpers/models.js';
import { runCli } from './helpers/cli.js';

const config = makeConfig({ dim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 259, multipleOf: 32, maxSeqLen: 32 });
const dir = mkdtempSync(join(tmpdir(), 'llama-ts-mmap-'));
const model = peakedModel(config, 5);

function logits(m: ReturnType<typeof loadAnyModel>['model'], tokens: number[]): Float32Array[] {
  const dec = new Decoder(m);
  const cache = dec.newCache();
  return tokens.map((t) => Float32Array.from(dec.step([{ cache, tokens: [t] }])[0]));
}

const CASES: [ModelFormat, string, { ggufType?: 'f32' | 'f16' | 'q8_0' | 'q4_0'; hfDtype?: 'F32' | 'F16' }, RegExp | null][] = [
  ['llama2c', 'model.bin', {}, null],
  ['gguf', 'f32.gguf', { ggufType: 'f32' }, null],
  // quantized tensors stay in their blocks over the mapping, the embedding table too (its rows dequantized on lookup);
  // the one copy: Q4_0/Q8_0 matrices repacked for the decode kernels (said so)
  ['gguf', 'q8.gguf', { ggufType: 'q8_0' }, /copied .* \(Q4_0\/Q8_0 repacked into 8-row groups/],
  ['gguf', 'q4.gguf', { ggufType: 'q4_0' }, /copied .* \(Q4_0\/Q8_0 repacked into 8-row groups/],
  ['ckpt', 'ckpt', {}, null],
  ['hf', 'hf32', { hfDtype: 'F32' }, /copied .* \(q\/k rows permuted/],
  ['hf', 'hf16', { hfDtype: 'F16' }, /copied .* \(F16 → F32\)/],
];

for (const [format, name, o, copied] of CASES) {
  test(`mapped and read paths give identical logits: ${name}`, { skip }, () => {
    const path = join(dir, name);
    saveModelAs(format, path, model, null, o);
    const lines: string[] = [];
    const mapped = loadAnyModel(path, native(), format, undefined, { weights: 'map', verbose: (l) => lines.push(l) });
    const read = loadAnyModel(path, native(), format, undefined, { weights: 'copy' });
    assert.equal(mapped.mapped, true);
    assert.equal(read.mapped, false);
    assert.match(lines[0], /^weights: mapped .* read-only; [\d.]+ MiB used in place/);
    if (copied) assert.ok(lines.some((l) => copied.test(l)), lines.join('\n'));
    else assert.equal(lines.length, 1, lines.join('\n')); // F32 in a 4-byte-aligned layout: nothing copied
    const a = logits(mapped.model, [1, 40, 77, 3, 200]);
    const b = logits(read.model, [1, 40, 77, 3, 200]);
    for (let i = 0; i < a.length; i++) assert.deepEqual(a[i], b[i], `position ${i}`);
  });
}

test('mapped F32 weights are views of the file, not copies', { skip }, () => {
  const path = join(dir, 'view.bin');
  saveModelAs('llama2c', path, model, null);
  const m = loadAnyModel(path, native(), 'llama2c', undefined, { weights: 'map' }).model;
  const w = m.params.get('layers.0.attention.wq.weight') as Float32Array;
  assert.equal(w.byteOffset % 4, 0);
  assert.ok(w.buffer.byteLength >= statSync(path).size, 'the view is over the whole mapped file');
  const bytes = readFileSync(path);
  const at = w.byteOffset;
  assert.deepEqual(new Uint8Array(w.buffer, at, 64), new Uint8Array(bytes.buffer, bytes.byteOffset + at, 64));
});

test('quantized weights of a mapped GGUF are views of the file, not copies', { skip }, () => {
  const path = join(dir, 'qview.gguf');
  saveModelAs('gguf', path, model, null, { ggufType: 'q4_0' });
  const m = loadAnyModel(path, native(), 'gguf', undefined, { weights: 'map' }).model;
  const q = m.quantized(m.layout.layers[1].wq);
  assert.equal(q?.type, 'Q4_0');
  assert.ok((q as { data: Uint8Array }).data.buffer.byteLength >= statSync(path).size, 'the blocks are a view over the whole mapped file');
  const bytes = readFileSync(path);
  const d = (q as { data: Uint8Array }).data;
  assert.deepEqual(d.subarray(0, 64), new Uint8Array(bytes.buffer, bytes.byteOffset + d.byteOffset, 64));
});

test("release gives a view's whole pages back and the bytes still read as the file; the read path and foreign views release nothing", { skip }, () => {
  const path = join(dir, 'pages.bin');
  const bytes = Uint8Array.from({ length: 64 * 1024 }, (_, i) => (i * 131 + 7) & 255);
  writeFileSync(path, bytes);
  const f = openModelFile(path, { map: true });
  assert.equal(f.mapped, true);
  const v = f.bytes(100, 30000);
  const page = 4096;
  // the whole pages inside [100, 30100): 4096 .. 28672
  assert.equal(f.release(v), Math.floor(30100 / page) * page - Math.ceil(100 / page) * page);
  assert.deepEqual(v, bytes.subarray(100, 30100), 'read back from the page cache after the release');
  assert.equal(f.release(f.bytes(5000, 100)), 0, 'no whole page inside');
  assert.equal(f.release(new Uint8Array(8192)), 0, 'not a view of this file');
  const r = openModelFile(path, { map: false });
  assert.equal(r.mapped, false);
  assert.equal(r.release(r.bytes(0, 16384)), 0);
  assert.deepEqual(r.bytes(0, 16384), bytes.subarray(0, 16384));
});

test("a mapped Q8_0 GGUF: the repacked matrices' blocks are given back (said so), the rest stays mapped, the logits are the read path's", { skip }, () => {
  // matrices of several pages each, so that whole pages lie inside them
  const c = makeConfig({ dim: 256, nLayers: 1, nHeads: 4, nKvHeads: 4, vocabSize: 259, multipleOf: 32, maxSeqLen: 16 });
  const path = join(dir, 'release-q8.gguf');
  saveModelAs('gguf', path, peakedModel(c, 3), null, { ggufType: 'q8_0' });
  const lines: string[] = [];
  const mapped = loadAnyModel(path, native(), 'gguf', undefined, { weights: 'map', verbose: (l) => lines.push(l) });
  const line = lines.find((l) => /repacked/.test(l)) ?? '';
  const m = /their mapped blocks given back: ([\d.]+) MiB out of the resident set/.exec(line);
  assert.ok(m && Number(m[1]) > 0.1, line);
  const wq = mapped.model.layout.layers[0].wq;
  assert.ok(mapped.model.repacked(wq));
  assert.ok(!mapped.model.repacked(mapped.model.layout.tokEmbeddings), 'the embedding table is looked up in its blocks');
  const read = loadAnyModel(path, native(), 'gguf', undefined, { weights: 'copy' });
  const a = logits(mapped.model, [1, 40, 77]);
  const b = logits(read.model, [1, 40, 77]);
  for (let i = 0; i < a.length; i++) assert.deepEqual(a[i], b[i], `position ${i}`);
});

test('a mapped model is read-only: it cannot be trained or initialised', { skip }, () => {
  const path = join(dir, 'ro.gguf');
  saveModelAs('gguf', path, model, null);
  const m = loadAnyModel(path, native(), 'gguf', undefined, { weights: 'map' }).model;
  assert.throws(() => m.ensureGrads(), /training needs writable weights/);
  assert.throws(() => m.init(1), /mapped, read-only/);
  assert.throws(() => m.params.data, /no flat buffer/);
});

test('the ref backend keeps the plain read path', () => {
  const path = join(dir, 'ref.bin');
  saveModelAs('llama2c', path, model, null);
  const lines: string[] = [];
  const m = loadAnyModel(path, createRefBackend('f32'), 'llama2c', undefined, { weights: 'map', verbose: (l) => lines.push(l) });
  assert.equal(m.mapped, false);
  assert.match(lines[0], /read .* into the model's own float32 buffer .*not mapped: the ref backend reads/);
});

test('a truncated file is refused before it is mapped', { skip }, () => {
  for (const [format, name] of [['llama2c', 'cut.bin'], ['gguf', 'cut.gguf'], ['hf', 'cuthf']] as const) {
    const path = join(dir, name);
    saveModelAs(format, path, model, null);
    const file = format === 'hf' ? join(path, 'model.safetensors') : path;
    truncateSync(file, statSync(file).size - 4);
    assert.throws(() => loadAnyModel(path, native(), format, undefined, { weights: 'map' }), (e: Error) => e instanceof UserError && /truncated|implies|cover/.test(e.message), name);
  }
  // openModelFile itself refuses a size other than the one the header check accepted, before mapping
  const path = join(dir, 'size.bin');
  writeFileSync(path, Buffer.alloc(100));
  assert.throws(() => openModelFile(path, { map: true, expectSize: 104 }), /changed while it was being opened \(100 bytes.*104-byte/);
});

const CHILD = `
import { truncateSync } from 'node:fs';
const { loadAnyModel } = await import(process.argv[1] + '/src/io/formats.js');
const { createBackend } = await import(process.argv[1] + '/src/kernels/index.js');
const { Decoder } = await import(process.argv[1] + '/src/inference/generate.js');
const path = process.argv[2];
const { model } = loadAnyModel(path, createBackend('native'), 'llama2c', undefined, { weights: 'map' });
const dec = new Decoder(model);
const cache = dec.newCache();
dec.step([{ cache, tokens: [1] }]);
truncateSync(path, 28 + 4096);
const w = model.params.get('output.weight');
console.log('after truncation the last weight reads', w[w.length - 1]);
try {
  dec.step([{ cache, tokens: [2] }]);
  console.log('no error');
} catch (e) {
  console.log('error:', e.constructor.name, e.message);
}
`;

test('a file truncated while mapped does not crash the process: the next decode step stops with one line', { skip }, () => {
  const path = join(dir, 'shrink.bin');
  saveModelAs('llama2c', path, model, null);
  const distRoot = join(fileURLToPath(new URL('.', import.meta.url)), '..');
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', CHILD, distRoot, path], { encoding: 'utf8' });
  assert.equal(r.status, 0, `exit ${r.status} signal ${r.signal}\n${r.stderr}`);
  assert.match(r.stdout, /after truncation the last weight reads 0\n/);
  assert.match(r.stdout, /error: UserError model file '.*shrink\.bin' changed while in use \(4124 bytes now, \d+ when it was mapped; \d+ reads? past its end returned zeros\): stopping/);
});

test('cli: generate maps by default and says so with --verbose; --no-mmap and LLAMA_TS_NO_NATIVE=1 (the wasm fallback) read; same text', { skip }, () => {
  const path = join(dir, 'cli.gguf');
  saveModelAs('gguf', path, model, null);
  const args = ['generate', '--model', path, '--ids', '1,40,77', '-n', '8', '--temperature', '0', '--ignore-eos', '--verbose'];
  const mapped = runCli(args);
  const read = runCli([...args, '--no-mmap']);
  const noAddon = runCli(args, undefined, { LLAMA_TS_NO_NATIVE: '1' });
  for (const r of [mapped, read, noAddon]) assert.equal(r.code, 0, r.stderr);
  assert.match(mapped.stderr, /^llama-ts: weights: mapped GGUF file '.*cli\.gguf' read-only; [\d.]+ MiB used in place \(no copy\)$/m);
  assert.match(read.stderr, /^llama-ts: weights: read GGUF file .* into the model's own float32 buffer/m);
  assert.match(noAddon.stderr, /^llama-ts: weights: read .*not mapped: the (wasm|ref) backend reads/m);
  assert.equal(mapped.stdout, read.stdout);
});

test('adviseHugePages advises the whole 2 MiB pages inside an array; the backend advises its large buffers onto them', { skip }, () => {
  const addon = native().addon;
  assert.ok(addon.adviseHugePages, 'the addon has adviseHugePages');
  const advise = addon.adviseHugePages.bind(addon);
  assert.equal(advise(new Float32Array(1000)), 0, 'nothing whole inside 4 KB');
  const big = new Float32Array(3 << 20); // 12 MiB: at least five whole 2 MiB pages inside, wherever it starts
  const bytes = advise(big);
  const thp = (() => {
    try {
      return /\[(always|madvise)\]/.test(readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'));
    } catch {
      return false;
    }
  })();
  if (thp) {
    assert.equal(bytes % (2 << 20), 0);
    assert.ok(bytes >= 5 * (2 << 20) && bytes <= big.byteLength, `${bytes} bytes advised`);
  } else assert.equal(bytes, 0);
  assert.throws(() => advise({} as Float32Array), /adviseHugePages: expects a typed array/);
  // the native backend's alloc advises its large buffers (before anything is written into them), not small ones
  const be = native();
  const seen: number[] = [];
  const original = be.addon.adviseHugePages;
  be.addon.adviseHugePages = (x: Float32Array | Uint16Array) => {
    seen.push(x.length);
    return original ? original.call(be.addon, x) : 0;
  };
  try {
    be.alloc(1000);
    const a = be.alloc(4 << 20);
    assert.deepEqual(seen, [4 << 20]);
    assert.ok(a.every((v) => v === 0));
    // and its bf16 buffers (--dtype bf16) from the same bytes
    assert.ok(be.allocBf16, 'the native backend allocates bf16 buffers');
    be.allocBf16((2 << 20) - 1);
    const b = be.allocBf16(2 << 20);
    assert.ok(b instanceof Uint16Array && b.length === 2 << 20 && b.every((v) => v === 0));
    assert.deepEqual(seen, [4 << 20, 2 << 20]);
  } finally {
    be.addon.adviseHugePages = original;
  }
});

test('the native backend allocates buffers of 1024 elements and more on 64-byte boundaries (alignSkip)', { skip }, () => {
  const be = native();
  const skipOf = be.addon.alignSkip;
  assert.ok(skipOf, 'the addon has alignSkip');
  // alignSkip: the elements to skip for the data to start on the boundary, from a known-aligned array's views
  const base = be.alloc(4096);
  assert.equal(skipOf(base, 64), 0);
  assert.equal(skipOf(base.subarray(1), 64), 15);
  assert.equal(skipOf(base.subarray(15), 64), 1);
  assert.equal(skipOf(base.subarray(3), 16), 1);
  assert.equal(skipOf(new Uint8Array(base.buffer, base.byteOffset + 1, 100), 64), 63);
  assert.throws(() => skipOf(base, 3), /power of two up to 4096/);
  assert.throws(() => skipOf(base, 8192), /power of two up to 4096/);
  assert.throws(() => skipOf({} as ArrayBufferView, 64), /alignSkip: expects a typed array/);
  for (const n of [1024, 1025, 5000, 4 << 20]) {
    const a = be.alloc(n);
    assert.ok(a instanceof Float32Array && a.length === n && a.every((v) => v === 0), `alloc(${n})`);
    assert.equal(skipOf(a, 64), 0, `alloc(${n}) starts on a cache line`);
    a.fill(1); // the view is the whole of what it says: writing all of it leaves the buffer's other bytes alone
    const whole = new Float32Array(a.buffer);
    assert.equal(whole.reduce((s, v) => s + v, 0), n);
    const b = be.allocBf16!(n);
    assert.ok(b instanceof Uint16Array && b.length === n && b.every((v) => v === 0), `allocBf16(${n})`);
    assert.equal(skipOf(b, 64), 0, `allocBf16(${n}) starts on a cache line`);
  }
  assert.equal(be.alloc(10).length, 10);
});

test('the memory check before loading sees the weights as they will be held: a mapped quantized file at its size, no float32 loading copy', { skip }, () => {
  const path = join(dir, 'footprint-q4.gguf');
  saveModelAs('gguf', path, model, null, { ggufType: 'q4_0' });
  const seen: { bytes: number; mapped: boolean }[] = [];
  const f32 = model.layout.total * 4;
  loadAnyModel(path, native(), 'gguf', (_c, _d, fp) => seen.push(fp), { weights: 'map' });
  loadAnyModel(path, native(), 'gguf', (_c, _d, fp) => seen.push(fp), { weights: 'copy' });
  const [mapped, read] = seen;
  assert.equal(mapped.mapped, true);
  // Q4_0 blocks (4.5 bits a value) twice (the repacked copy) and the float tensors: well under the float32 size
  assert.ok(mapped.bytes < f32 / 2 && mapped.bytes > statSync(path).size / 2, `${mapped.bytes} bytes`);
  assert.deepEqual(read, { bytes: f32, mapped: false });
  const withMap = inferenceMemory(model.config, { weightBytes: mapped.bytes, loadingCopy: false });
  const asF32 = inferenceMemory(model.config);
  assert.equal(withMap.parts.find((p) => p.name === 'loading copy')?.bytes ?? 0, 0);
  assert.ok(withMap.total < asF32.total - f32, `${withMap.total} vs ${asF32.total}`);
});
