/**
 * GGUF v3 (llama.cpp's file format): the reader, without the file system (the page reads dropped files with it;
 * `gguf.ts` reads paths with it and holds the writer).
 *
 *   "GGUF" u32 version, u64 tensor_count, u64 kv_count
 *   kv_count × (string key, u32 value_type, value)          strings: u64 length + UTF-8 bytes
 *   tensor_count × (string name, u32 n_dims, n_dims × u64 ne, u32 ggml_type, u64 offset)
 *   padding to general.alignment (default 32), then the tensor data; each offset is relative to the data start
 *   and a multiple of the alignment.
 *
 * Dimension order: ne[0] is the fastest-varying (contiguous) dimension, the reverse of the row-major shape, so a
 * PyTorch weight [out, in] is stored with ne = [in, out].
 *
 * The reader is defensive: every count and length is checked against the bytes that remain before anything is
 * allocated, counts are capped (MAX_TENSORS tensors, MAX_KV metadata entries, MAX_ARRAY values per metadata array,
 * MAX_NAME bytes per key or tensor name), every check is linear in the header, tensor extents must lie inside the
 * file, not overlap and leave no gaps but alignment padding, the file must end within one alignment of the last
 * tensor (so inserted or trailing bytes are errors, not shifted weights), and only the types listed in GGML_TYPES
 * are understood (others are named in the error).
 *
 * Two entry points share the one parser: `parseGgufHeader` over the first bytes of a file (it throws
 * `GgufNeedMore` when the header runs past them; gguf.ts then reads more) and `ggufFromBytes`, a whole file in
 * memory (a File's ArrayBuffer in the page). `ggufFile` puts a parsed header over any source of the file's bytes.
 */
import { UserError, quoted } from '../util/errors.js';
import { f16ToF32 } from '../util/half.js';
import { QUANT_TYPES, dequantize as dequantizeBlocks, isQuantType, quantTensor, type QuantTensor } from '../kernels/ops/quant.js';
import type { FileBytes } from '../util/mmap.js';

export const GGUF_MAGIC = 0x46554747; // "GGUF" little-endian
export const GGUF_DEFAULT_ALIGNMENT = 32;

export enum GgufValueType {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7, STRING = 8, ARRAY = 9,
  UINT64 = 10, INT64 = 11, FLOAT64 = 12,
}

/** Bytes of each scalar metadata type. */
export const SCALAR_BYTES: Partial<Record<GgufValueType, number>> = {
  [GgufValueType.UINT8]: 1, [GgufValueType.INT8]: 1, [GgufValueType.UINT16]: 2, [GgufValueType.INT16]: 2,
  [GgufValueType.UINT32]: 4, [GgufValueType.INT32]: 4, [GgufValueType.FLOAT32]: 4, [GgufValueType.BOOL]: 1,
  [GgufValueType.UINT64]: 8, [GgufValueType.INT64]: 8, [GgufValueType.FLOAT64]: 8,
};

/** ggml tensor types this module reads and writes (the quantized ones in their block layout: kernels/ops/quant.ts). */
export const GGML_TYPES = {
  F32: { id: 0, blockSize: 1, blockBytes: 4 },
  F16: { id: 1, blockSize: 1, blockBytes: 2 },
  ...QUANT_TYPES, // Q4_0, Q8_0, Q4_K, Q6_K, BF16
} as const;
export type GgmlTypeName = keyof typeof GGML_TYPES;

/** Names of the ggml types we do not read, for error messages. */
const GGML_TYPE_NAMES: Record<number, string> = {
  3: 'Q4_1', 6: 'Q5_0', 7: 'Q5_1', 9: 'Q8_1', 10: 'Q2_K', 11: 'Q3_K', 13: 'Q5_K',
  15: 'Q8_K', 16: 'IQ2_XXS', 17: 'IQ2_XS', 18: 'IQ3_XXS', 19: 'IQ1_S', 20: 'IQ4_NL', 21: 'IQ3_S', 22: 'IQ2_S', 23: 'IQ4_XS',
  24: 'I8', 25: 'I16', 26: 'I32', 27: 'I64', 28: 'F64', 29: 'IQ1_M', 34: 'TQ1_0', 35: 'TQ2_0', 39: 'MXFP4',
};

function typeById(id: number): [GgmlTypeName, (typeof GGML_TYPES)[GgmlTypeName]] | null {
  for (const [k, v] of Object.entries(GGML_TYPES)) if (v.id === id) return [k as GgmlTypeName, v];
  return null;
}

export function ggmlTypeName(id: number): string {
  return typeById(id)?.[0] ?? GGML_TYPE_NAMES[id] ?? `unknown type ${id}`;
}

export type GgufScalar = number | bigint | boolean | string;
export type GgufValue = GgufScalar | GgufScalar[];

export interface GgufTensorInfo {
  name: string;
  /** ggml order: ne[0] contiguous. */
  ne: number[];
  /** Row-major shape (ne reversed). */
  shape: number[];
  type: GgmlTypeName;
  offset: number;
  nbytes: number;
}

/** A GGUF file: its header (without the size: `bytes.size`) and access to its tensors. */
export interface GgufFile extends Omit<GgufHeader, 'size'> {
  path: string;
  /**
   * The file's bytes (util/mmap.ts): mapped when readGguf was asked to map (then `bytes.whole` is the whole file as
   * one Uint8Array over the mapping and `tensorBytes` views into it), else the read path.
   */
  bytes: FileBytes;
  /** A tensor's data as stored (its ggml type's block layout): a view of the mapping, or a copy read from the file. */
  tensorBytes(name: string): Uint8Array;
  /** A tensor as float32: F32 data of a mapped file is a view (no copy); other types are converted into a new array. */
  readF32(name: string): Float32Array;
  /**
   * A 2-D tensor of a type held as stored (kernels/ops/quant.ts: Q8_0, Q4_0, Q4_K, Q6_K, BF16) in its block layout
   * over tensorBytes (a view of the mapping when mapped: no copy), or null for other types.
   */
  readQuant(name: string): QuantTensor | null;
}

/** Most tensors a file may describe (llama 405B has 1,138; mixture-of-experts files tens of thousands). */
export const MAX_TENSORS = 1 << 17;
/** Most metadata entries. */
export const MAX_KV = 1 << 16;
/** Most values in one metadata array (vocabularies and merge lists are ~10^5). */
export const MAX_ARRAY = 1 << 22;
/** Longest key or tensor name, in bytes (ggml's own limit for tensor names is 64). */
export const MAX_NAME = 1 << 16;
/** Longest metadata string value, in bytes (chat templates and configs are kilobytes). */
export const MAX_STRING = 1 << 24;

/** The header runs past the bytes given: read more of the file and parse again. */
export class GgufNeedMore extends Error {}

const utf8 = new TextDecoder('utf-8');

class Cursor {
  pos = 0;
  private readonly dv: DataView;
  constructor(readonly buf: Uint8Array, readonly fileSize: number, readonly what: string) {
    this.dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  need(n: number): void {
    if (n < 0 || this.pos + n > this.buf.length) {
      if (this.pos + n <= this.fileSize && this.buf.length < this.fileSize) throw new GgufNeedMore();
      throw new UserError(`${this.what} is truncated or corrupt: needs ${this.pos + n} bytes in its header, file has ${this.fileSize}`);
    }
  }
  /** Bytes left in the file after the cursor: an upper bound for any count read next. */
  left(): number {
    return this.fileSize - this.pos;
  }
  u32(): number {
    this.need(4);
    const v = this.dv.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  u64(): number {
    this.need(8);
    const v = this.dv.getBigUint64(this.pos, true);
    this.pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new UserError(`${this.what} is corrupt: a 64-bit size (${v}) is out of range`);
    return Number(v);
  }
  str(max = MAX_STRING): string {
    const n = this.u64();
    if (n > this.left()) throw new UserError(`${this.what} is corrupt: a string of ${n} bytes exceeds the file`);
    if (n > max) throw new UserError(`${this.what}: a ${max === MAX_NAME ? 'name' : 'string'} of ${n} bytes (at most ${max} are read)`);
    this.need(n);
    const s = text(this.buf, this.pos, this.pos + n);
    this.pos += n;
    return s;
  }
  scalar(t: GgufValueType): GgufScalar {
    const b = this.dv;
    if (t === GgufValueType.STRING) return this.str();
    const n = SCALAR_BYTES[t];
    if (n === undefined) throw new UserError(`${this.what} is corrupt: unknown metadata value type ${t}`);
    this.need(n);
    const p = this.pos;
    this.pos += n;
    switch (t) {
      case GgufValueType.UINT8: return b.getUint8(p);
      case GgufValueType.INT8: return b.getInt8(p);
      case GgufValueType.UINT16: return b.getUint16(p, true);
      case GgufValueType.INT16: return b.getInt16(p, true);
      case GgufValueType.UINT32: return b.getUint32(p, true);
      case GgufValueType.INT32: return b.getInt32(p, true);
      case GgufValueType.FLOAT32: return b.getFloat32(p, true);
      case GgufValueType.BOOL: return b.getUint8(p) !== 0;
      case GgufValueType.UINT64: return narrow(b.getBigUint64(p, true));
      case GgufValueType.INT64: return narrow(b.getBigInt64(p, true));
      case GgufValueType.FLOAT64: return b.getFloat64(p, true);
    }
    throw new UserError(`${this.what} is corrupt: unknown metadata value type ${t}`);
  }
  value(t: GgufValueType): GgufValue {
    if (t !== GgufValueType.ARRAY) return this.scalar(t);
    const et = this.u32() as GgufValueType;
    if (et === GgufValueType.ARRAY) throw new UserError(`${this.what}: nested metadata arrays are not supported`);
    const count = this.u64();
    const min = et === GgufValueType.STRING ? 8 : SCALAR_BYTES[et];
    if (min === undefined) throw new UserError(`${this.what} is corrupt: unknown metadata array type ${et}`);
    if (count * min > this.left()) throw new UserError(`${this.what} is corrupt: an array of ${count} values exceeds the file`);
    if (count > MAX_ARRAY) throw new UserError(`${this.what}: a metadata array of ${count} values (at most ${MAX_ARRAY} are read)`);
    const out: GgufScalar[] = new Array(count);
    for (let i = 0; i < count; i++) out[i] = this.scalar(et);
    return out;
  }
}

/** UTF-8 bytes [a, b) as a string (invalid sequences become U+FFFD); ASCII, most keys and pieces, without a decoder. */
function text(buf: Uint8Array, a: number, b: number): string {
  if (b - a <= 64) {
    let s = '';
    for (let i = a; i < b; i++) {
      const c = buf[i];
      if (c >= 0x80) return utf8.decode(buf.subarray(a, b));
      s += String.fromCharCode(c);
    }
    return s;
  }
  return utf8.decode(buf.subarray(a, b));
}

function narrow(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/** A GGUF file's header: everything but the tensor data. */
export interface GgufHeader {
  version: number;
  metadata: Map<string, GgufValue>;
  tensors: Map<string, GgufTensorInfo>;
  alignment: number;
  dataStart: number;
  /** The file's size, which every tensor extent was checked against. */
  size: number;
}

/**
 * Parses and checks the header of a `size`-byte GGUF file from its first bytes `buf` (the whole file, or a prefix:
 * GgufNeedMore when the header runs past it). `what` names the file in messages.
 */
export function parseGgufHeader(buf: Uint8Array, size: number, what: string): GgufHeader {
  const c = new Cursor(buf, size, what);
  if (size < 4) throw new UserError(`${what} is truncated (${size} bytes)`);
  if (c.u32() !== GGUF_MAGIC) throw new UserError(`${what} is not a GGUF file (bad magic)`);
  const version = c.u32();
  if (version !== 3 && version !== 2) throw new UserError(`${what}: unsupported GGUF version ${version} (2 and 3 are supported)`);
  const nTensors = c.u64();
  const nKv = c.u64();
  // each kv needs >= 8+4+1 bytes, each tensor info >= 8+4+8+4+8
  if (nKv * 13 > c.left() || nTensors * 32 > c.left()) throw new UserError(`${what} is corrupt: ${nKv} metadata entries and ${nTensors} tensors cannot fit in ${size} bytes`);
  if (nTensors > MAX_TENSORS) throw new UserError(`${what}: ${nTensors} tensors (at most ${MAX_TENSORS} are read)`);
  if (nKv > MAX_KV) throw new UserError(`${what}: ${nKv} metadata entries (at most ${MAX_KV} are read)`);
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < nKv; i++) {
    const key = c.str(MAX_NAME);
    const t = c.u32() as GgufValueType;
    if (t > GgufValueType.FLOAT64) throw new UserError(`${what} is corrupt: metadata ${quoted(key)} has unknown type ${t}`);
    if (metadata.has(key)) throw new UserError(`${what} is corrupt: metadata ${quoted(key)} appears twice`);
    metadata.set(key, c.value(t));
  }
  let alignment = GGUF_DEFAULT_ALIGNMENT;
  const al = metadata.get('general.alignment');
  if (al !== undefined) {
    if (typeof al !== 'number' || !Number.isInteger(al) || al <= 0 || (al & (al - 1)) !== 0) throw new UserError(`${what}: general.alignment ${String(al)} is not a power of two`);
    alignment = al;
  }
  const infos: GgufTensorInfo[] = [];
  const names = new Set<string>();
  for (let i = 0; i < nTensors; i++) {
    const name = c.str(MAX_NAME);
    const tn = quoted(name);
    const nd = c.u32();
    if (nd < 1 || nd > 4) throw new UserError(`${what}: tensor ${tn} has ${nd} dimensions (1 to 4 allowed)`);
    const ne: number[] = [];
    for (let d = 0; d < nd; d++) ne.push(c.u64());
    const typeId = c.u32();
    const offset = c.u64();
    const tt = typeById(typeId);
    if (!tt) throw new UserError(`${what}: tensor ${tn} has type ${ggmlTypeName(typeId)}, which llama-ts does not read (supported: ${Object.keys(GGML_TYPES).join(', ')})`);
    let n = 1;
    for (const d of ne) {
      n *= d;
      if (n > size * 8) throw new UserError(`${what}: tensor ${tn} shape [${ne.join(', ')}] is larger than the file`);
    }
    if (ne[0] % tt[1].blockSize !== 0) throw new UserError(`${what}: tensor ${tn} (${tt[0]}) row length ${ne[0]} is not a multiple of ${tt[1].blockSize}`);
    const nbytes = (n / tt[1].blockSize) * tt[1].blockBytes;
    if (offset % alignment !== 0) throw new UserError(`${what}: tensor ${tn} offset ${offset} is not aligned to ${alignment}`);
    if (names.has(name)) throw new UserError(`${what}: tensor ${tn} appears twice`);
    names.add(name);
    infos.push({ name, ne, shape: ne.slice().reverse(), type: tt[0], offset, nbytes });
  }
  const dataStart = Math.ceil(c.pos / alignment) * alignment;
  const dataLen = size - dataStart;
  for (const t of infos) {
    if (t.offset + t.nbytes > dataLen) throw new UserError(`${what} is truncated: tensor ${quoted(t.name)} ends at byte ${t.offset + t.nbytes} of a ${Math.max(0, dataLen)}-byte data section`);
  }
  // tensors lie back to back, each starting at the next aligned offset; the file ends at most one alignment after
  // the last tensor (writers pad the last tensor too, or not)
  const sorted = infos.slice().sort((a, b) => a.offset - b.offset || a.nbytes - b.nbytes);
  const up = (x: number) => Math.ceil(x / alignment) * alignment;
  let end = 0;
  for (let i = 0; i < sorted.length; i++) {
    const t = sorted[i];
    if (i > 0 && t.offset < end) throw new UserError(`${what} is corrupt: tensors ${quoted(sorted[i - 1].name)} and ${quoted(t.name)} overlap`);
    if (t.offset !== up(end)) throw new UserError(`${what} is corrupt: ${t.offset - end} data bytes before tensor ${quoted(t.name)} belong to no tensor`);
    end = t.offset + t.nbytes;
  }
  if (sorted.length > 0 && (dataLen < end || dataLen > up(end))) {
    throw new UserError(`${what} is corrupt: its tensors end at byte ${end} of the data section but the file has ${dataLen} data bytes (trailing or inserted bytes)`);
  }
  return { version, metadata, tensors: new Map(infos.map((t) => [t.name, t])), alignment, dataStart, size };
}

/** A parsed header over the file's bytes (mapped or read from a path by gguf.ts, in memory by ggufFromBytes). */
export function ggufFile(path: string, h: GgufHeader, bytes: FileBytes): GgufFile {
  const what = `GGUF file '${path}'`;
  const { tensors, dataStart } = h;
  const info = (name: string) => {
    const t = tensors.get(name);
    if (!t) throw new UserError(`${what} has no tensor ${quoted(name)}`);
    return t;
  };
  return {
    path, version: h.version, metadata: h.metadata, tensors, alignment: h.alignment, dataStart, bytes,
    tensorBytes(name: string): Uint8Array {
      const t = info(name);
      return bytes.bytes(dataStart + t.offset, t.nbytes);
    },
    readF32(name: string): Float32Array {
      const t = info(name);
      if (t.type === 'F32') return bytes.f32(dataStart + t.offset, t.nbytes / 4).data;
      return dequantize(bytes.bytes(dataStart + t.offset, t.nbytes), t.type, t.nbytes);
    },
    readQuant(name: string): QuantTensor | null {
      const t = info(name);
      if (!isQuantType(t.type) || t.shape.length !== 2) return null;
      return quantTensor(t.type, t.shape[0], t.shape[1], bytes.bytes(dataStart + t.offset, t.nbytes));
    },
  };
}

let f16Table: Float32Array | null = null;

/** The 65536 float16 values as float32 (built once: a table lookup per value instead of arithmetic). */
function halfTable(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16ToF32(h);
  }
  return f16Table;
}

function dequantize(raw: Uint8Array, type: GgmlTypeName, nbytes: number): Float32Array {
  switch (type) {
    case 'F32': {
      const out = new Float32Array(nbytes / 4);
      new Uint8Array(out.buffer).set(raw.subarray(0, nbytes));
      return out;
    }
    case 'F16': {
      const out = new Float32Array(nbytes / 2);
      const tab = halfTable();
      for (let i = 0; i < out.length; i++) out[i] = tab[raw[2 * i] | (raw[2 * i + 1] << 8)];
      return out;
    }
    case 'BF16': {
      const out = new Float32Array(nbytes / 2);
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < out.length; i++) u[i] = (raw[2 * i] | (raw[2 * i + 1] << 8)) << 16;
      return out;
    }
    case 'Q8_0': {
      const blocks = nbytes / 34;
      const out = new Float32Array(blocks * 32);
      const q = new Int8Array(raw.buffer, raw.byteOffset, nbytes);
      const tab = halfTable();
      for (let b = 0; b < blocks; b++) {
        const at = b * 34;
        const d = tab[raw[at] | (raw[at + 1] << 8)];
        const o = b * 32;
        for (let j = 0; j < 32; j++) out[o + j] = d * q[at + 2 + j];
      }
      return out;
    }
    default: {
      const q = QUANT_TYPES[type];
      return dequantizeBlocks(type, new Uint8Array(raw.buffer, raw.byteOffset, nbytes), (nbytes / q.blockBytes) * q.blockSize);
    }
  }
}


/** A whole GGUF file in memory (a dropped file in the page): its views are of `data`, nothing is copied but converted tensors. */
export function ggufFromBytes(data: Uint8Array, name: string): GgufFile {
  const h = parseGgufHeader(data, data.length, `GGUF file '${name}'`);
  return ggufFile(name, h, memoryBytes(data, name));
}

/** FileBytes over bytes in memory: views where aligned, copies where not (as a mapped file's). */
export function memoryBytes(data: Uint8Array, name: string): FileBytes {
  const range = (offset: number, n: number) => {
    if (!(Number.isInteger(offset) && Number.isInteger(n) && offset >= 0 && n >= 0 && offset + n <= data.length)) {
      throw new UserError(`'${name}' is truncated or corrupt: bytes ${offset}..${offset + n} lie outside its ${data.length} bytes`);
    }
  };
  return {
    path: name, size: data.length, mapped: false, whole: data,
    bytes(offset, n) {
      range(offset, n);
      return data.subarray(offset, offset + n);
    },
    f32(offset, n) {
      range(offset, n * 4);
      const at = data.byteOffset + offset;
      if (at % 4 === 0) return { data: new Float32Array(data.buffer, at, n), copied: false };
      return { data: new Float32Array(data.slice(offset, offset + n * 4).buffer), copied: true };
    },
    readInto(offset, out) {
      range(offset, out.length);
      out.set(data.subarray(offset, offset + out.length));
    },
    check() {},
    release: () => 0,
  };
}
