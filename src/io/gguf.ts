/**
 * GGUF v3 (llama.cpp's file format) on the file system: `readGguf` reads a path (mapped or read; the header is
 * parsed by gguf-read.ts, the one parser, which the page also uses on a dropped file's bytes) and `writeGguf` writes
 * one. The layout, the checks and the types read are described in gguf-read.ts.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { UserError } from '../util/errors.js';
import { writeFileAtomic } from '../util/fsutil.js';
import { f32ToF16, f32ToBf16 } from './half.js';
import { quantize } from '../kernels/ops/quant.js';
import { openModelFile } from '../util/mmap.js';
import { GGML_TYPES, GGUF_MAGIC, GGUF_DEFAULT_ALIGNMENT, GgufNeedMore, GgufValueType, ggufFile, parseGgufHeader, SCALAR_BYTES, type GgmlTypeName, type GgufFile, type GgufScalar, type GgufValue } from './gguf-read.js';

export * from './gguf-read.js';

const MAX_HEADER = 512 * 1024 * 1024;

export function readGguf(path: string, o: { map?: boolean } = {}): GgufFile {
  const what = `GGUF file '${path}'`;
  const fd = openSync(path, 'r');
  let header;
  try {
    const size = fstatSync(fd).size;
    let want = Math.min(size, 1 << 20);
    for (;;) {
      const buf = new Uint8Array(want);
      readSync(fd, buf, 0, want, 0);
      try {
        header = parseGgufHeader(buf, size, what);
        break;
      } catch (e) {
        if (!(e instanceof GgufNeedMore)) throw e;
        if (want >= Math.min(size, MAX_HEADER)) throw new UserError(`${what}: header is larger than ${MAX_HEADER} bytes`);
        want = Math.min(size, MAX_HEADER, want * 4);
      }
    }
  } finally {
    closeSync(fd);
  }
  // every extent is checked against the size above; the file must still be that size when it is mapped
  const map = Boolean(o.map);
  return ggufFile(path, header, openModelFile(path, { map, expectSize: header.size, populate: map }));
}

// ------------------------------------------------------------------ writing

export { f32ToF16, f32ToBf16 } from './half.js';

/** Encodes float32 values as a ggml type (the quantized ones by kernels/ops/quant.ts). */
export function encodeTensor(data: Float32Array, type: GgmlTypeName): Buffer {
  switch (type) {
    case 'F32':
      return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    case 'F16': {
      const out = Buffer.alloc(data.length * 2);
      for (let i = 0; i < data.length; i++) out.writeUInt16LE(f32ToF16(data[i]), i * 2);
      return out;
    }
    case 'BF16': {
      const out = Buffer.alloc(data.length * 2);
      for (let i = 0; i < data.length; i++) out.writeUInt16LE(f32ToBf16(data[i]), i * 2);
      return out;
    }
    default: {
      const q = quantize(type, data);
      return Buffer.from(q.buffer, q.byteOffset, q.byteLength);
    }
  }
}

export interface GgufKv {
  key: string;
  type: GgufValueType;
  /** For ARRAY: the element type. */
  elemType?: GgufValueType;
  value: GgufValue;
}

export interface GgufTensorToWrite {
  name: string;
  /** Row-major shape; written reversed. */
  shape: number[];
  data: Float32Array;
  type: GgmlTypeName;
}

function encodeString(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(b.length));
  return Buffer.concat([len, b]);
}

function encodeScalar(t: GgufValueType, v: GgufScalar): Buffer {
  if (t === GgufValueType.STRING) return encodeString(String(v));
  const n = SCALAR_BYTES[t];
  if (n === undefined) throw new Error(`cannot encode GGUF type ${t}`);
  const b = Buffer.alloc(n);
  switch (t) {
    case GgufValueType.UINT8: b.writeUInt8(Number(v)); break;
    case GgufValueType.INT8: b.writeInt8(Number(v)); break;
    case GgufValueType.UINT16: b.writeUInt16LE(Number(v)); break;
    case GgufValueType.INT16: b.writeInt16LE(Number(v)); break;
    case GgufValueType.UINT32: b.writeUInt32LE(Number(v)); break;
    case GgufValueType.INT32: b.writeInt32LE(Number(v)); break;
    case GgufValueType.FLOAT32: b.writeFloatLE(Number(v)); break;
    case GgufValueType.BOOL: b.writeUInt8(v ? 1 : 0); break;
    case GgufValueType.UINT64: b.writeBigUInt64LE(BigInt(v as number)); break;
    case GgufValueType.INT64: b.writeBigInt64LE(BigInt(v as number)); break;
    case GgufValueType.FLOAT64: b.writeDoubleLE(Number(v)); break;
  }
  return b;
}

export function writeGguf(path: string, kvs: GgufKv[], tensors: GgufTensorToWrite[], alignment = GGUF_DEFAULT_ALIGNMENT): void {
  const head: Buffer[] = [];
  const u32 = (v: number) => encodeScalar(GgufValueType.UINT32, v);
  const u64 = (v: number) => encodeScalar(GgufValueType.UINT64, v);
  head.push(u32(GGUF_MAGIC), u32(3), u64(tensors.length), u64(kvs.length));
  for (const kv of kvs) {
    head.push(encodeString(kv.key), u32(kv.type));
    if (kv.type === GgufValueType.ARRAY) {
      const arr = kv.value as GgufScalar[];
      const et = kv.elemType as GgufValueType;
      head.push(u32(et), u64(arr.length));
      if (et === GgufValueType.STRING) for (const v of arr) head.push(encodeString(String(v)));
      else {
        const n = SCALAR_BYTES[et] as number;
        const b = Buffer.alloc(arr.length * n);
        arr.forEach((v, i) => encodeScalar(et, v).copy(b, i * n));
        head.push(b);
      }
    } else head.push(encodeScalar(kv.type, kv.value as GgufScalar));
  }
  const datas: Buffer[] = [];
  let offset = 0;
  for (const t of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length) throw new Error(`writeGguf: '${t.name}' has ${t.data.length} values for shape [${t.shape}]`);
    const ne = t.shape.slice().reverse();
    head.push(encodeString(t.name), u32(ne.length));
    for (const d of ne) head.push(u64(d));
    head.push(u32(GGML_TYPES[t.type].id), u64(offset));
    const data = encodeTensor(t.data, t.type);
    const pad = (alignment - (data.length % alignment)) % alignment;
    datas.push(data, Buffer.alloc(pad));
    offset += data.length + pad;
  }
  const headLen = head.reduce((a, b) => a + b.length, 0);
  head.push(Buffer.alloc((alignment - (headLen % alignment)) % alignment));
  writeFileAtomic(path, [...head, ...datas]);
}
