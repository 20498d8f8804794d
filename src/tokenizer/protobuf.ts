/**
 * A minimal, defensive protobuf (proto2 wire format) codec driven by small schemas.
 * Enough for SentencePiece's ModelProto; unknown fields are kept as raw bytes and written back.
 * Every malformed input throws a UserError; lengths are checked against the remaining buffer
 * before anything is allocated, so a corrupt file can never cause a huge allocation or a hang.
 */
import { UserError } from '../util/errors.js';

export type FieldKind = 'string' | 'bytes' | 'int32' | 'uint64' | 'bool' | 'float' | 'enum' | 'message';

export interface FieldDef {
  no: number;
  name: string;
  kind: FieldKind;
  repeated?: boolean;
  schema?: Schema; // for kind 'message'
}
export interface Schema {
  name: string;
  fields: FieldDef[];
}

/** A decoded message: known fields by name, plus `$unknown` raw fields (tag + payload) in file order. */
export type Msg = { [name: string]: unknown; $unknown?: Uint8Array[] };

const utf8 = new TextDecoder('utf-8', { ignoreBOM: true });
const utf8enc = new TextEncoder();

export class ProtoError extends UserError {}

class Reader {
  pos: number;
  constructor(readonly buf: Uint8Array, start: number, readonly end: number, readonly what: string) {
    this.pos = start;
  }
  fail(msg: string): never {
    throw new ProtoError(`${this.what}: corrupt protobuf (${msg} at byte ${this.pos})`);
  }
  /** Reads a varint as [lo32 unsigned, hi32 unsigned]. */
  varint(): [number, number] {
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) this.fail('truncated varint');
      const b = this.buf[this.pos++];
      if (i < 4) lo |= (b & 0x7f) << (7 * i);
      else if (i === 4) {
        lo |= (b & 0x0f) << 28;
        hi |= (b & 0x7f) >> 4;
      } else hi |= (b & 0x7f) << (7 * i - 32);
      if (!(b & 0x80)) return [lo >>> 0, hi >>> 0];
    }
    this.fail('varint longer than 10 bytes');
  }
  len(): number {
    const [lo, hi] = this.varint();
    if (hi !== 0 || lo > this.end - this.pos) this.fail(`length ${hi ? 'huge' : lo} exceeds the ${this.end - this.pos} bytes left`);
    return lo;
  }
  skip(wire: number): void {
    switch (wire) {
      case 0:
        this.varint();
        return;
      case 1:
        if (this.end - this.pos < 8) this.fail('truncated fixed64');
        this.pos += 8;
        return;
      case 2: {
        const n = this.len(); // (not `this.pos += this.len()`: len() moves pos first)
        this.pos += n;
        return;
      }
      case 5:
        if (this.end - this.pos < 4) this.fail('truncated fixed32');
        this.pos += 4;
        return;
      default:
        this.fail(`unsupported wire type ${wire}`);
    }
  }
}

const WIRE: Record<FieldKind, number> = { string: 2, bytes: 2, message: 2, int32: 0, uint64: 0, bool: 0, enum: 0, float: 5 };

function decodeInto(r: Reader, end: number, schema: Schema, depth: number): Msg {
  if (depth > 16) r.fail('messages nested too deeply');
  const out: Msg = {};
  const byNo = fieldIndex(schema);
  while (r.pos < end) {
    const tagStart = r.pos;
    const [tlo, thi] = r.varint();
    if (thi !== 0) r.fail('bad tag');
    const no = tlo >>> 3;
    const wire = tlo & 7;
    if (no === 0) r.fail('field number 0');
    const f = byNo.get(no);
    if (!f || WIRE[f.kind] !== wire) {
      r.skip(wire);
      if (r.pos > end) r.fail('field overruns its message');
      (out.$unknown ??= []).push(new Uint8Array(r.buf.subarray(tagStart, r.pos)));
      continue;
    }
    let v: unknown;
    switch (f.kind) {
      case 'string': {
        const n = r.len();
        v = utf8.decode(r.buf.subarray(r.pos, r.pos + n));
        r.pos += n;
        break;
      }
      case 'bytes': {
        const n = r.len();
        v = new Uint8Array(r.buf.subarray(r.pos, r.pos + n)); // a copy, even for a Buffer
        r.pos += n;
        break;
      }
      case 'message': {
        const n = r.len();
        const sub = r.pos + n;
        v = decodeInto(r, sub, f.schema!, depth + 1);
        if (r.pos !== sub) r.fail('sub-message length mismatch');
        break;
      }
      case 'int32':
      case 'enum': {
        v = r.varint()[0] | 0;
        break;
      }
      case 'uint64': {
        const [lo, hi] = r.varint();
        v = hi * 4294967296 + lo;
        break;
      }
      case 'bool':
        v = r.varint()[0] !== 0 || false;
        break;
      case 'float': {
        if (end - r.pos < 4) r.fail('truncated float');
        v = new DataView(r.buf.buffer, r.buf.byteOffset + r.pos, 4).getFloat32(0, true);
        r.pos += 4;
        break;
      }
    }
    if (r.pos > end) r.fail('field overruns its message');
    if (f.repeated) ((out[f.name] as unknown[] | undefined) ?? (out[f.name] = [] as unknown[]) as unknown[]).push(v);
    else out[f.name] = v;
  }
  if (r.pos !== end) r.fail('message overruns its length');
  return out;
}

const indexCache = new WeakMap<Schema, Map<number, FieldDef>>();
function fieldIndex(s: Schema): Map<number, FieldDef> {
  let m = indexCache.get(s);
  if (!m) {
    m = new Map(s.fields.map((f) => [f.no, f]));
    indexCache.set(s, m);
  }
  return m;
}

export function decodeMessage(buf: Uint8Array, schema: Schema, what: string): Msg {
  const r = new Reader(buf, 0, buf.length, what);
  return decodeInto(r, buf.length, schema, 0);
}

/** Growable byte buffer for encoding. */
class Writer {
  buf = new Uint8Array(1024);
  pos = 0;
  ensure(n: number) {
    if (this.pos + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.pos + n) cap *= 2;
    const b = new Uint8Array(cap);
    b.set(this.buf.subarray(0, this.pos));
    this.buf = b;
  }
  varint(lo: number, hi = 0) {
    this.ensure(10);
    lo >>>= 0;
    hi >>>= 0;
    while (hi !== 0 || lo > 0x7f) {
      this.buf[this.pos++] = (lo & 0x7f) | 0x80;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    this.buf[this.pos++] = lo;
  }
  bytes(b: Uint8Array) {
    this.varint(b.length);
    this.raw(b);
  }
  raw(b: Uint8Array) {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
  finish(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}

function encodeValue(w: Writer, f: FieldDef, v: unknown) {
  w.varint((f.no << 3) | WIRE[f.kind]);
  switch (f.kind) {
    case 'string':
      w.bytes(utf8enc.encode(String(v)));
      break;
    case 'bytes':
      w.bytes(v as Uint8Array);
      break;
    case 'message':
      w.bytes(encodeMessage(v as Msg, f.schema!));
      break;
    case 'int32':
    case 'enum': {
      const n = Number(v) | 0;
      w.varint(n >>> 0, n < 0 ? 0xffffffff : 0);
      break;
    }
    case 'uint64': {
      const n = Math.max(0, Math.floor(Number(v)));
      w.varint(n % 4294967296, Math.floor(n / 4294967296));
      break;
    }
    case 'bool':
      w.varint(v ? 1 : 0);
      break;
    case 'float': {
      w.ensure(4);
      new DataView(w.buf.buffer).setFloat32(w.pos, Number(v), true);
      w.pos += 4;
      break;
    }
  }
}

/** Encodes known fields in field-number order (as protobuf-C++ does), then the preserved unknown fields. */
export function encodeMessage(m: Msg, schema: Schema): Uint8Array {
  const w = new Writer();
  const fields = [...schema.fields].sort((a, b) => a.no - b.no);
  for (const f of fields) {
    const v = m[f.name];
    if (v === undefined || v === null) continue;
    if (f.repeated) for (const x of v as unknown[]) encodeValue(w, f, x);
    else encodeValue(w, f, v);
  }
  for (const u of m.$unknown ?? []) w.raw(u);
  return w.finish();
}
