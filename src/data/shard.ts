/**
 * Token shard files. Layout (little-endian):
 *
 *   offset  size  field
 *   0       8     magic "LTSHARD\0"
 *   8       4     version (1)
 *   12      4     bytes per token: 2 (uint16, vocab ≤ 65536) or 4 (uint32)
 *   16      8     token count N
 *   24      8     document count D
 *   32      4     vocabulary size (every token id is below it)
 *   36      28    reserved (zero)
 *   64      8(D+1) document start offsets (uint64, in tokens; first 0, last N)
 *   ...     N·bpt tokens
 *
 * Each document is stored as BOS, its tokens, EOS. Files are written atomically (temporary sibling + rename).
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { writeFileAtomic } from '../util/fsutil.js';
import { UserError } from '../util/errors.js';

export const SHARD_MAGIC = 'LTSHARD\0';
export const SHARD_VERSION = 1;
export const HEADER_BYTES = 64;

export function bytesPerTokenFor(vocabSize: number): 2 | 4 {
  return vocabSize <= 65536 ? 2 : 4;
}

/** Serialises one shard and writes it atomically. `docStarts` has D+1 entries ending at tokens.length. */
export function writeShard(path: string, tokens: Uint16Array | Uint32Array, docStarts: ArrayLike<number>, vocabSize: number): void {
  const bpt = tokens.BYTES_PER_ELEMENT as 2 | 4;
  if (bpt !== bytesPerTokenFor(vocabSize)) throw new Error(`shard dtype ${bpt * 8}-bit does not match vocab ${vocabSize}`);
  const D = docStarts.length - 1;
  if (D < 0 || docStarts[0] !== 0 || docStarts[D] !== tokens.length) throw new Error('shard document index does not cover its tokens');
  const header = Buffer.alloc(HEADER_BYTES);
  header.write(SHARD_MAGIC, 0, 'latin1');
  header.writeUInt32LE(SHARD_VERSION, 8);
  header.writeUInt32LE(bpt, 12);
  header.writeBigUInt64LE(BigInt(tokens.length), 16);
  header.writeBigUInt64LE(BigInt(D), 24);
  header.writeUInt32LE(vocabSize, 32);
  const index = new BigUint64Array(D + 1);
  for (let i = 0; i <= D; i++) index[i] = BigInt(docStarts[i]);
  writeFileAtomic(path, [header, new Uint8Array(index.buffer), new Uint8Array(tokens.buffer, tokens.byteOffset, tokens.byteLength)]);
}

export interface ShardHeader {
  path: string;
  bytesPerToken: 2 | 4;
  tokens: number;
  docs: number;
  vocabSize: number;
  dataOffset: number;
}

function corrupt(path: string, why: string): UserError {
  return new UserError(`shard '${path}' is corrupt: ${why} (re-run 'llama-ts data prepare')`);
}

/** Reads and checks a header against the file size. */
export function readShardHeader(path: string, fd?: number): ShardHeader {
  const own = fd === undefined;
  let f: number;
  try {
    f = fd ?? openSync(path, 'r');
  } catch (e) {
    throw new UserError(`cannot open shard '${path}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    const size = fstatSync(f).size;
    const h = Buffer.alloc(HEADER_BYTES);
    if (size < HEADER_BYTES || readSync(f, h, 0, HEADER_BYTES, 0) !== HEADER_BYTES) throw corrupt(path, `file is ${size} bytes, shorter than the ${HEADER_BYTES}-byte header`);
    if (h.toString('latin1', 0, 8) !== SHARD_MAGIC) throw corrupt(path, 'bad magic (not a llama-ts token shard)');
    const version = h.readUInt32LE(8);
    if (version !== SHARD_VERSION) throw corrupt(path, `unsupported version ${version}`);
    const bpt = h.readUInt32LE(12);
    if (bpt !== 2 && bpt !== 4) throw corrupt(path, `bad token width ${bpt}`);
    const tokens = Number(h.readBigUInt64LE(16));
    const docs = Number(h.readBigUInt64LE(24));
    const vocabSize = h.readUInt32LE(32);
    const dataOffset = HEADER_BYTES + 8 * (docs + 1);
    const expect = dataOffset + tokens * bpt;
    if (!Number.isSafeInteger(expect) || expect !== size) throw corrupt(path, `header says ${tokens} tokens in ${docs} documents (${expect} bytes) but the file has ${size} bytes`);
    if (bpt !== bytesPerTokenFor(vocabSize)) throw corrupt(path, `token width ${bpt} does not match vocabulary ${vocabSize}`);
    return { path, bytesPerToken: bpt, tokens, docs, vocabSize, dataOffset };
  } finally {
    if (own) closeSync(f);
  }
}

/** Random access to one shard's tokens (positioned reads; nothing is held in memory). */
export class ShardReader {
  readonly header: ShardHeader;
  private fd: number;
  private buf = Buffer.alloc(0);

  constructor(readonly path: string) {
    try {
      this.fd = openSync(path, 'r');
    } catch (e) {
      throw new UserError(`cannot open shard '${path}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    this.header = readShardHeader(path, this.fd);
  }

  /** Copies tokens [start, start+len) into out[at...]. */
  read(start: number, len: number, out: Int32Array, at: number): void {
    const h = this.header;
    if (start < 0 || start + len > h.tokens) throw new Error(`window ${start}+${len} outside shard of ${h.tokens} tokens`);
    const bytes = len * h.bytesPerToken;
    if (this.buf.length < bytes) this.buf = Buffer.alloc(bytes);
    const got = readSync(this.fd, this.buf, 0, bytes, h.dataOffset + start * h.bytesPerToken);
    if (got !== bytes) throw corrupt(this.path, 'short read');
    if (h.bytesPerToken === 2) for (let i = 0; i < len; i++) out[at + i] = this.buf.readUInt16LE(2 * i);
    else for (let i = 0; i < len; i++) out[at + i] = this.buf.readUInt32LE(4 * i);
    // a token outside the vocabulary would index past the embedding table: name the shard instead
    for (let i = 0; i < len; i++) {
      if (out[at + i] >= h.vocabSize || out[at + i] < 0) throw corrupt(this.path, `token ${out[at + i] >>> 0} at position ${start + i} is outside its vocabulary of ${h.vocabSize}`);
    }
  }

  /** Document start offsets (D+1 entries). */
  docStarts(): Float64Array {
    const h = this.header;
    const b = Buffer.alloc(8 * (h.docs + 1));
    readSync(this.fd, b, 0, b.length, HEADER_BYTES);
    const out = new Float64Array(h.docs + 1);
    for (let i = 0; i <= h.docs; i++) out[i] = Number(b.readBigUInt64LE(8 * i));
    return out;
  }

  close(): void {
    closeSync(this.fd);
  }
}
