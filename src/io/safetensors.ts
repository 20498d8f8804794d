/**
 * safetensors (Hugging Face): 8-byte little-endian header length, a JSON header
 * {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}, then the raw little-endian data.
 * The reader validates everything before touching the data: header bounds, dtypes, shapes against offsets,
 * offsets inside the file and not overlapping, and (as the format requires) the tensors cover the data section
 * exactly: no holes, no bytes before the first or after the last tensor, so an insertion, a deletion or trailing
 * junk is an error rather than shifted weights. The header's entries are counted before it is parsed (at most
 * MAX_TENSORS), so a huge header costs a scan, not gigabytes of parsed JSON.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { UserError, quoted } from '../util/errors.js';
import { bytesOf, writeFileAtomic } from '../util/fsutil.js';
import { f32ToBf16, f32ToF16 } from './half.js';
import { f16ToF32 } from '../util/half.js';
import { openModelFile, type FileBytes } from '../util/mmap.js';

export type SafeDType = 'F32' | 'F16' | 'BF16' | 'F64' | 'I32' | 'I64' | 'U8';
const DTYPE_BYTES: Record<SafeDType, number> = { F32: 4, F16: 2, BF16: 2, F64: 8, I32: 4, I64: 8, U8: 1 };
const MAX_HEADER = 100 * 1024 * 1024;
/** Most tensors one file may describe (real checkpoints have thousands; the largest shards a few thousand). */
export const MAX_TENSORS = 1 << 16;

/** Occurrences of `"data_offsets"` in the header bytes: an upper bound on the tensor entries, found without parsing. */
function countEntries(h: Buffer): number {
  const key = Buffer.from('"data_offsets"');
  let n = 0;
  for (let i = h.indexOf(key); i >= 0; i = h.indexOf(key, i + key.length)) n++;
  return n;
}

export interface SafeTensorInfo {
  name: string;
  dtype: SafeDType;
  shape: number[];
  begin: number; // byte offsets into the data section
  end: number;
}

export interface SafeTensorsFile {
  path: string;
  tensors: Map<string, SafeTensorInfo>;
  metadata: Record<string, string>;
  dataStart: number;
  /** The file's bytes (util/mmap.ts): mapped when the header was read with `map`, else the read path. */
  bytes: FileBytes;
  /** Reads a tensor as float32: F32 data of a mapped file at a 4-byte-aligned offset is a view; else a new array (F16/BF16/F64 converted). */
  readF32(name: string): Float32Array;
  /** Reads a tensor into `out` (its length must match): F32 straight from the file into out's bytes, others converted. */
  readF32Into(name: string, out: Float32Array): void;
  /** Why readF32(name) is a copy ('F16 → F32', 'read', 'unaligned'), or null for a view of the mapping. */
  converted(name: string): string | null;
}

export function readSafetensorsHeader(path: string, o: { map?: boolean } = {}): SafeTensorsFile {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const what = `safetensors file '${path}'`;
    if (size < 8) throw new UserError(`${what} is truncated (${size} bytes)`);
    const lenBuf = Buffer.alloc(8);
    readSync(fd, lenBuf, 0, 8, 0);
    const hlen = Number(lenBuf.readBigUInt64LE(0));
    if (hlen > MAX_HEADER || 8 + hlen > size) throw new UserError(`${what} is corrupt: header length ${hlen} exceeds the file (${size} bytes)`);
    const hbuf = Buffer.alloc(hlen);
    readSync(fd, hbuf, 0, hlen, 8);
    const entries = countEntries(hbuf);
    if (entries > MAX_TENSORS) throw new UserError(`${what} is corrupt: its header describes ${entries} tensors (at most ${MAX_TENSORS} are read)`);
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(hbuf.toString('utf8')) as Record<string, unknown>;
    } catch {
      throw new UserError(`${what} is corrupt: header is not valid JSON`);
    }
    if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new UserError(`${what} is corrupt: header is not an object`);
    const dataStart = 8 + hlen;
    const dataLen = size - dataStart;
    const tensors = new Map<string, SafeTensorInfo>();
    let metadata: Record<string, string> = {};
    for (const [name, v] of Object.entries(header)) {
      if (name === '__metadata__') {
        if (v !== null && (typeof v !== 'object' || Array.isArray(v))) throw new UserError(`${what} is corrupt: __metadata__ is not an object`);
        metadata = (v ?? {}) as Record<string, string>;
        continue;
      }
      const tn = quoted(name);
      const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      if (typeof e !== 'object' || e === null) throw new UserError(`${what}: tensor ${tn} has no description`);
      const dtype = e.dtype as SafeDType;
      if (typeof dtype !== 'string' || !(dtype in DTYPE_BYTES)) throw new UserError(`${what}: tensor ${tn} has unsupported dtype ${quoted(e.dtype)}`);
      const shape = e.shape;
      if (!Array.isArray(shape) || shape.length > 8 || !shape.every((d) => Number.isInteger(d) && d >= 0)) throw new UserError(`${what}: tensor ${tn} has a bad shape`);
      const off = e.data_offsets;
      if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isInteger(d) && d >= 0)) {
        throw new UserError(`${what}: tensor ${tn} has bad data_offsets`);
      }
      const [begin, end] = off as [number, number];
      const n = (shape as number[]).reduce((a, b) => a * b, 1);
      if (end < begin || end - begin !== n * DTYPE_BYTES[dtype]) {
        throw new UserError(`${what}: tensor ${tn} shape [${shape.join(', ')}] ${dtype} does not match its ${end - begin} data bytes`);
      }
      if (end > dataLen) throw new UserError(`${what} is truncated: tensor ${tn} ends at byte ${end} of a ${dataLen}-byte data section`);
      tensors.set(name, { name, dtype, shape: shape as number[], begin, end });
    }
    const sorted = [...tensors.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
    let covered = 0;
    for (const t of sorted) {
      if (t.begin < covered) throw new UserError(`${what} is corrupt: tensor ${quoted(t.name)} overlaps the tensor before it`);
      if (t.begin > covered) throw new UserError(`${what} is corrupt: ${t.begin - covered} data bytes before tensor ${quoted(t.name)} belong to no tensor`);
      covered = t.end;
    }
    if (covered !== dataLen) {
      throw new UserError(`${what} is corrupt: its tensors cover ${covered} data bytes but the file has ${dataLen} after the header (${dataLen > covered ? 'trailing or inserted bytes' : 'truncated'})`);
    }
    // every extent was checked against `size`: the file must still be that size when it is mapped
    const bytes = openModelFile(path, { map: Boolean(o.map), expectSize: size, populate: o.map });
    const info = (name: string) => {
      const t = tensors.get(name);
      if (!t) throw new UserError(`${what} has no tensor ${quoted(name)}`);
      return t;
    };
    return {
      path, tensors, metadata, dataStart, bytes,
      readF32(name: string): Float32Array {
        const t = info(name);
        if (t.dtype === 'F32') return bytes.f32(dataStart + t.begin, (t.end - t.begin) / 4).data;
        return toF32(bytes.bytes(dataStart + t.begin, t.end - t.begin), t.dtype, name);
      },
      readF32Into(name: string, out: Float32Array): void {
        const t = info(name);
        const n = (t.end - t.begin) / DTYPE_BYTES[t.dtype];
        if (out.length !== n) throw new UserError(`${what}: tensor ${quoted(name)} has ${n} values, ${out.length} expected`);
        if (t.dtype === 'F32') bytes.readInto(dataStart + t.begin, new Uint8Array(out.buffer, out.byteOffset, out.byteLength));
        else out.set(toF32(bytes.bytes(dataStart + t.begin, t.end - t.begin), t.dtype, name));
      },
      converted(name: string): string | null {
        const t = info(name);
        if (t.dtype !== 'F32') return `${t.dtype} → F32`;
        if (!bytes.mapped) return 'read';
        return (dataStart + t.begin) % 4 === 0 ? null : 'unaligned in the file';
      },
    };
  } finally {
    closeSync(fd);
  }
}

function toF32(raw: Uint8Array, dtype: SafeDType, name: string): Float32Array {
  const n = raw.length / DTYPE_BYTES[dtype];
  const out = new Float32Array(n);
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  switch (dtype) {
    case 'F32':
      new Uint8Array(out.buffer).set(raw);
      return out;
    case 'F64':
      for (let i = 0; i < n; i++) out[i] = dv.getFloat64(i * 8, true);
      return out;
    case 'F16':
      for (let i = 0; i < n; i++) out[i] = f16ToF32(dv.getUint16(i * 2, true));
      return out;
    case 'BF16': {
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) u[i] = dv.getUint16(i * 2, true) << 16;
      return out;
    }
    default:
      throw new UserError(`tensor ${quoted(name)} has dtype ${dtype}, not a floating-point type`);
  }
}

export { f16ToF32 } from '../util/half.js';

export interface TensorToWrite {
  name: string;
  shape: number[];
  data: Float32Array;
  /** Stored type (default F32); F16/BF16 round to nearest even. */
  dtype?: 'F32' | 'F16' | 'BF16';
}

function encode(t: TensorToWrite): Uint8Array {
  if (!t.dtype || t.dtype === 'F32') return bytesOf(t.data);
  const conv = t.dtype === 'F16' ? f32ToF16 : f32ToBf16;
  const out = Buffer.alloc(t.data.length * 2);
  for (let i = 0; i < t.data.length; i++) out.writeUInt16LE(conv(t.data[i]), i * 2);
  return out;
}

/** Writes tensors (float32 unless a dtype is given) atomically (temp file + rename). Tensors are laid out in the given order, 8-byte aligned header. */
export function writeSafetensors(path: string, tensors: TensorToWrite[], metadata: Record<string, string> = {}): void {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length) throw new Error(`writeSafetensors: '${t.name}' has ${t.data.length} values for shape [${t.shape}]`);
    const bytes = t.dtype === 'F16' || t.dtype === 'BF16' ? 2 : 4;
    header[t.name] = { dtype: t.dtype ?? 'F32', shape: t.shape, data_offsets: [offset, offset + n * bytes] };
    offset += n * bytes;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const hbytes = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]); // data starts 8-byte aligned
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hbytes.length));
  writeFileAtomic(path, [len, hbytes, ...tensors.map(encode)]);
}
