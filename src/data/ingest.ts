/**
 * Streaming ingest: turns a source's files into documents one at a time, in a fixed order, with constant memory
 * (bounded by the longest line / document, never by the file size).
 *
 * Formats: `text` (one document per file, or documents separated by a separator line), `jsonl` (one JSON object
 * per line, the document in a configurable field), `parquet` (a string column, read one row group at a time with
 * hyparquet on a worker thread, under a time and heap limit), `brown` (the bundled Brown corpus). Any text or JSONL file may be compressed: `.gz` (node:zlib) or
 * `.zst` (fzstd, pure JS). Bad records (malformed JSON, missing text field, invalid UTF-8) fail with file:line,
 * or are skipped and counted with `onBadRecord: 'skip'`. Truncated or corrupt compressed files always fail.
 */
import { createReadStream, existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { createGunzip } from 'node:zlib';
import { Worker } from 'node:worker_threads';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { Decompress as ZstdDecompress } from 'fzstd';
import { UserError } from '../util/errors.js';
import { brownDocuments, brownDir } from './brown.js';

export type SourceFormat = 'text' | 'jsonl' | 'parquet' | 'brown';
export type BadRecordPolicy = 'fail' | 'skip';

export interface IngestSpec {
  name: string;
  /** Files and/or directories (directories are walked recursively, in sorted order). */
  paths: string[];
  format: SourceFormat;
  /** JSONL / Parquet: the field (column) holding the document text. Default 'text'. */
  textField?: string;
  /**
   * Text files: null/undefined = one document per file; 'blank-line' = documents separated by one or more blank
   * lines; any other string = documents separated by a line equal to it (e.g. '<|endoftext|>').
   */
  separator?: string | null;
  onBadRecord?: BadRecordPolicy;
}

export interface Doc {
  text: string;
  /** file:line (or file#row) of the document's first line, for messages. */
  where: string;
}

export interface IngestCounters {
  files: number;
  /** Bytes read from disk (compressed size for compressed files). */
  bytes: number;
  docs: number;
  badRecords: Record<string, number>;
}

const EXTENSIONS: Record<SourceFormat, string[]> = {
  text: ['.txt', '.md', '.text'],
  jsonl: ['.jsonl', '.json', '.ndjson'],
  parquet: ['.parquet'],
  brown: [],
};

/** The files of a source, in a deterministic order. */
export function listSourceFiles(spec: IngestSpec): string[] {
  if (spec.format === 'brown') {
    const dir = brownDir();
    return readdirSync(dir).filter((f) => /^c[a-r]\d\d$/.test(f)).sort().map((f) => join(dir, f));
  }
  const exts = EXTENSIONS[spec.format];
  const ok = (f: string) => {
    const base = f.replace(/\.(gz|zst)$/, '');
    return exts.some((e) => base.endsWith(e));
  };
  const out: string[] = [];
  for (const p of spec.paths) {
    if (!existsSync(p)) throw new UserError(`source '${spec.name}': path '${p}' does not exist`);
    const st = statSync(p);
    if (st.isDirectory()) {
      const walk = (dir: string): string[] =>
        readdirSync(dir, { withFileTypes: true })
          .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
          .flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : ok(e.name) ? [join(dir, e.name)] : []));
      const found = walk(p);
      if (found.length === 0) throw new UserError(`source '${spec.name}': directory '${p}' has no ${exts.join('/')} files (optionally .gz/.zst)`);
      out.push(...found);
    } else {
      out.push(p);
    }
  }
  if (out.length === 0) throw new UserError(`source '${spec.name}' lists no files`);
  return out;
}

/** Size on disk of a source's files (for estimates before tokenizing). */
export function sourceBytes(spec: IngestSpec): number {
  return listSourceFiles(spec).reduce((s, f) => s + statSync(f).size, 0);
}

class ZstdStream extends Transform {
  private d: ZstdDecompress;
  constructor() {
    super();
    this.d = new ZstdDecompress((chunk) => {
      // copied: the decoder may reuse block memory, and readLines keeps views of earlier chunks
      if (chunk.length) this.push(Buffer.from(chunk));
    });
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.d.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      cb();
    } catch (e) {
      cb(e as Error);
    }
  }
  override _flush(cb: TransformCallback): void {
    try {
      this.d.push(new Uint8Array(0), true);
      cb();
    } catch (e) {
      cb(e as Error);
    }
  }
}

function compression(file: string): 'gz' | 'zst' | null {
  return file.endsWith('.gz') ? 'gz' : file.endsWith('.zst') ? 'zst' : null;
}

/** A file's decompressed bytes as a stream; `counters.bytes` advances with the compressed bytes read. */
function openBytes(file: string, counters: IngestCounters): Readable {
  const raw = createReadStream(file, { highWaterMark: 1 << 20 });
  raw.on('data', (c) => (counters.bytes += (c as Buffer).length));
  const kind = compression(file);
  if (kind === null) return raw;
  const dec = kind === 'gz' ? createGunzip() : new ZstdStream();
  raw.on('error', (e) => dec.destroy(e));
  return raw.pipe(dec);
}

function describeStreamError(file: string, e: unknown): Error {
  if (e instanceof UserError) return e;
  const err = e as NodeJS.ErrnoException;
  const kind = compression(file);
  if (err && err.syscall) return new UserError(`cannot read '${file}': ${err.code ?? err.message}`);
  if (kind === 'gz') return new UserError(`'${file}' is a truncated or corrupt gzip file (${err.message})`);
  if (kind === 'zst') return new UserError(`'${file}' is a truncated or corrupt zstd file (${err.message})`);
  return e as Error;
}

/** Longest document, in UTF-16 code units (≈ characters), any format: longer ones are bad records (fail, or skip and count). */
export const MAX_DOC_CHARS = 16 << 20;
/** Longest line read (a JSONL line holds one document, escapes included). */
const MAX_LINE_BYTES = 4 * MAX_DOC_CHARS;

/**
 * The lines of a (possibly compressed) file as Buffers without the trailing newline (and without '\r'),
 * with their 1-based line numbers. Memory: one chunk plus the current line.
 */
export async function* readLines(file: string, counters: IngestCounters): AsyncGenerator<{ line: Buffer; no: number }> {
  const stream = openBytes(file, counters);
  let carry: Buffer[] = [];
  let carryLen = 0;
  let no = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let start = 0;
      for (;;) {
        const nl = chunk.indexOf(10, start);
        if (nl < 0) break;
        let line = chunk.subarray(start, nl);
        if (carryLen) {
          carry.push(line);
          line = Buffer.concat(carry);
          carry = [];
          carryLen = 0;
        }
        if (line.length && line[line.length - 1] === 13) line = line.subarray(0, line.length - 1);
        yield { line, no: ++no };
        start = nl + 1;
      }
      if (start < chunk.length) {
        carry.push(chunk.subarray(start));
        carryLen += chunk.length - start;
        if (carryLen > MAX_LINE_BYTES) throw new UserError(`'${file}' line ${no + 1} is longer than ${MAX_LINE_BYTES >> 20} MiB`);
      }
    }
    if (carryLen) {
      let line = Buffer.concat(carry);
      if (line.length && line[line.length - 1] === 13) line = line.subarray(0, line.length - 1);
      yield { line, no: ++no };
    }
  } catch (e) {
    throw describeStreamError(file, e);
  } finally {
    stream.destroy();
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

function decodeUtf8(b: Buffer): string | null {
  try {
    return utf8.decode(b);
  } catch {
    return null;
  }
}

/** Records a bad record: throws under 'fail', counts under 'skip'. */
function bad(spec: IngestSpec, counters: IngestCounters, reason: string, where: string, detail: string): void {
  if ((spec.onBadRecord ?? 'fail') === 'fail') {
    throw new UserError(`${where}: ${detail} (source '${spec.name}'; pass --on-bad-record skip to skip and count such records)`);
  }
  counters.badRecords[reason] = (counters.badRecords[reason] ?? 0) + 1;
}

function tooLong(chars: number): string {
  return `document of ${chars} characters is longer than ${MAX_DOC_CHARS} (split it into smaller documents)`;
}

async function* textDocs(spec: IngestSpec, file: string, counters: IngestCounters): AsyncGenerator<Doc> {
  const sep = spec.separator ?? null;
  let lines: string[] = [];
  let first = 0;
  let chars = 0;
  const flush = function* (): Generator<Doc> {
    if (chars > MAX_DOC_CHARS) bad(spec, counters, 'document too long', `${file}:${first}`, tooLong(chars));
    else {
      const text = lines.join('\n');
      if (text.trim().length > 0) yield { text, where: `${file}:${first}` };
    }
    lines = [];
    chars = 0;
  };
  for await (const { line, no } of readLines(file, counters)) {
    const s = decodeUtf8(line);
    if (s === null) {
      bad(spec, counters, 'invalid UTF-8', `${file}:${no}`, 'invalid UTF-8');
      continue;
    }
    if (sep !== null && (sep === 'blank-line' ? s.trim() === '' : s === sep)) {
      yield* flush();
      continue;
    }
    if (lines.length === 0 && chars === 0) first = no;
    chars += s.length + 1;
    // past the cap the document's lines are counted, not kept: memory stays bounded
    if (chars <= MAX_DOC_CHARS) lines.push(s);
    else lines = [];
  }
  yield* flush();
}

async function* jsonlDocs(spec: IngestSpec, file: string, counters: IngestCounters): AsyncGenerator<Doc> {
  const field = spec.textField ?? 'text';
  for await (const { line, no } of readLines(file, counters)) {
    const where = `${file}:${no}`;
    const s = decodeUtf8(line);
    if (s === null) {
      bad(spec, counters, 'invalid UTF-8', where, 'invalid UTF-8');
      continue;
    }
    if (s.trim() === '') continue;
    let obj: unknown;
    try {
      obj = JSON.parse(s);
    } catch (e) {
      bad(spec, counters, 'malformed JSON', where, `malformed JSON (${(e as Error).message})`);
      continue;
    }
    const text = obj !== null && typeof obj === 'object' && !Array.isArray(obj) ? (obj as Record<string, unknown>)[field] : undefined;
    if (typeof text !== 'string') {
      bad(spec, counters, 'missing text field', where, text === undefined ? `no "${field}" field` : `"${field}" is not a string`);
      continue;
    }
    if (text.length > MAX_DOC_CHARS) {
      bad(spec, counters, 'document too long', where, tooLong(text.length));
      continue;
    }
    yield { text, where };
  }
}

/**
 * Time limit for decoding one row group: PARQUET_BASE_MS plus PARQUET_MS_PER_MIB per MiB of its compressed column
 * chunks (decoding runs at tens of MB/s, so this is generous); `LLAMA_TS_PARQUET_TIMEOUT_MS` replaces the base
 * (tests). Heap limit of the decoding thread: PARQUET_HEAP_MB.
 */
const PARQUET_BASE_MS = 30_000;
const PARQUET_MS_PER_MIB = 2_000;
const PARQUET_HEAP_MB = 2048;

type ParquetMsg = { meta?: { columns: string[]; groups: { rows: number; bytes: number }[]; bytes: number }; rows?: unknown[]; error?: string; user?: boolean };

/**
 * A Parquet file's documents. hyparquet runs on a worker thread (parquet-worker.ts: structure checked first,
 * bounded decompression); a row group that takes longer than its time limit, a decoder that runs out of heap or
 * dies, ends in one line naming the file, and the thread is stopped.
 */
async function* parquetDocs(spec: IngestSpec, file: string, counters: IngestCounters): AsyncGenerator<Doc> {
  const field = spec.textField ?? 'text';
  const base = Number(process.env.LLAMA_TS_PARQUET_TIMEOUT_MS) > 0 ? Number(process.env.LLAMA_TS_PARQUET_TIMEOUT_MS) : PARQUET_BASE_MS;
  const worker = new Worker(new URL('./parquet-worker.js', import.meta.url), {
    workerData: { file, field }, resourceLimits: { maxOldGenerationSizeMb: PARQUET_HEAP_MB }, stdout: true, stderr: true,
  });
  let pending: { resolve: (m: ParquetMsg) => void; reject: (e: Error) => void } | null = null;
  let failure: Error | null = null;
  const fail = (e: Error) => {
    failure ??= e;
    pending?.reject(failure);
    pending = null;
  };
  worker.on('message', (m: ParquetMsg) => {
    const p = pending;
    pending = null;
    p?.resolve(m);
  });
  worker.on('error', (e: Error & { code?: string }) => {
    fail(new UserError(e.code === 'ERR_WORKER_OUT_OF_MEMORY' ? `'${file}': decoding ran out of memory (over ${PARQUET_HEAP_MB} MB; corrupt, or row groups too large)` : `'${file}': cannot decode (${e.message})`));
  });
  worker.on('exit', (code) => fail(new UserError(`'${file}': the Parquet decoder stopped (exit ${code})`)));
  const next = (ms: number, what: string): Promise<ParquetMsg> => new Promise((resolve, reject) => {
    if (failure) return reject(failure);
    const timer = setTimeout(() => fail(new UserError(`'${file}': decoding ${what} took longer than ${(ms / 1000).toFixed(1)} s (corrupt file?); stopped`)), ms);
    pending = {
      resolve: (m) => { clearTimeout(timer); resolve(m); },
      reject: (e) => { clearTimeout(timer); reject(e); },
    };
  });
  try {
    const first = await next(base, 'the footer');
    if (first.error) throw new UserError(first.error);
    const meta = first.meta!;
    counters.bytes += meta.bytes;
    let rowStart = 0;
    for (let g = 0; g < meta.groups.length; g++) {
      const rowEnd = rowStart + meta.groups[g].rows;
      const wait = next(base + PARQUET_MS_PER_MIB * (meta.groups[g].bytes / 2 ** 20), `rows ${rowStart}..${rowEnd}`);
      worker.postMessage({ rg: g });
      const m = await wait;
      if (m.error) throw new UserError(m.error);
      const rows = m.rows!;
      for (let i = 0; i < rows.length; i++) {
        const where = `${file}#row${rowStart + i}`;
        const text = rows[i];
        if (typeof text !== 'string') {
          bad(spec, counters, 'missing text field', where, text == null ? `"${field}" is null` : `"${field}" is not a string`);
          continue;
        }
        if (text.length > MAX_DOC_CHARS) {
          bad(spec, counters, 'document too long', where, tooLong(text.length));
          continue;
        }
        yield { text, where };
      }
      rowStart = rowEnd;
    }
  } finally {
    failure ??= new Error('closed');
    await worker.terminate();
  }
}

/** All documents of a source, in order. */
export async function* ingest(spec: IngestSpec, counters: IngestCounters): AsyncGenerator<Doc> {
  if (spec.format === 'brown') {
    const files = listSourceFiles(spec);
    const docs = brownDocuments();
    for (let i = 0; i < docs.length; i++) {
      counters.files++;
      counters.bytes += statSync(files[i]).size;
      counters.docs++;
      yield { text: docs[i], where: relative(process.cwd(), files[i]) };
    }
    return;
  }
  for (const file of listSourceFiles(spec)) {
    counters.files++;
    const gen = spec.format === 'text' ? textDocs(spec, file, counters) : spec.format === 'jsonl' ? jsonlDocs(spec, file, counters) : parquetDocs(spec, file, counters);
    for await (const d of gen) {
      counters.docs++;
      yield d;
    }
  }
}

export function newCounters(): IngestCounters {
  return { files: 0, bytes: 0, docs: 0, badRecords: {} };
}
