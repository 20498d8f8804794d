/**
 * Worker thread for Parquet ingest (ingest.ts `parquetDocs`): hyparquet decodes on this thread so that a corrupt
 * file that makes the decoder loop or allocate without end can be stopped from outside (a time limit per row
 * group, a heap limit) instead of hanging `data prepare`. Before any decoding, the file's structure is checked:
 * every column chunk lies inside the data region between the magic and the footer, chunks do not overlap, row
 * counts add up, and no chunk declares more than MAX_CHUNK_BYTES uncompressed. Decompression is bounded by the
 * page sizes the file declares.
 *
 * Messages: → {rg} (decode row group rg); ← {meta: {columns, groups: [{rows, bytes}]}} once, {rows} per request,
 * {error, user} on failure.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { gunzipSync } from 'node:zlib';
import { decompress as zstdDecompress } from 'fzstd';

/** The most bytes one column chunk of one row group may declare uncompressed (rewrite larger files with smaller row groups). */
export const MAX_CHUNK_BYTES = 1 << 30;

const { file, field } = workerData as { file: string; field: string };
const port = parentPort!;

class FileError extends Error {}

type Meta = Awaited<ReturnType<typeof import('hyparquet')['parquetMetadataAsync']>>;

function checkStructure(meta: Meta, size: number): void {
  const dataEnd = size - 8 - meta.metadata_length;
  if (!(dataEnd >= 4)) throw new FileError(`footer of ${meta.metadata_length} bytes does not fit in ${size} bytes`);
  const extents: [number, number][] = [];
  let rows = 0;
  for (const [g, rg] of meta.row_groups.entries()) {
    const n = Number(rg.num_rows);
    if (!Number.isSafeInteger(n) || n < 0) throw new FileError(`row group ${g} has ${rg.num_rows} rows`);
    rows += n;
    for (const c of rg.columns) {
      const md = c.meta_data;
      if (!md) throw new FileError(`row group ${g} has a column without metadata`);
      const start = Number(md.dictionary_page_offset ?? md.data_page_offset);
      const len = Number(md.total_compressed_size);
      const raw = Number(md.total_uncompressed_size);
      if (!(Number.isSafeInteger(start) && Number.isSafeInteger(len) && start >= 4 && len >= 0 && start + len <= dataEnd)) {
        throw new FileError(`row group ${g} column '${md.path_in_schema.join('.')}' spans bytes ${start}..${start + len}, outside the data region 4..${dataEnd} (truncated, or bytes inserted or deleted)`);
      }
      if (!(raw >= 0 && raw <= MAX_CHUNK_BYTES)) throw new FileError(`row group ${g} column '${md.path_in_schema.join('.')}' declares ${raw} uncompressed bytes (at most ${MAX_CHUNK_BYTES} per row group are read)`);
      extents.push([start, start + len]);
    }
  }
  if (rows !== Number(meta.num_rows)) throw new FileError(`row groups hold ${rows} rows but the footer says ${meta.num_rows}`);
  extents.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < extents.length; i++) if (extents[i][0] < extents[i - 1][1]) throw new FileError(`column chunks at bytes ${extents[i - 1][0]} and ${extents[i][0]} overlap`);
}

const compressors = {
  ZSTD: (input: Uint8Array, n: number) => zstdDecompress(input, new Uint8Array(n)),
  GZIP: (input: Uint8Array, n: number) => new Uint8Array(gunzipSync(input, { maxOutputLength: Math.max(1, n) })),
  // hyparquet's own decoder handles SNAPPY (into a buffer of the declared size) and UNCOMPRESSED
};

async function main(): Promise<void> {
  const { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, parquetSchema } = await import('hyparquet');
  let buf;
  let meta: Meta;
  try {
    buf = await asyncBufferFromFile(file);
    meta = await parquetMetadataAsync(buf);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).syscall) return void port.postMessage({ error: `cannot read '${file}': ${(e as NodeJS.ErrnoException).code}`, user: true });
    return void port.postMessage({ error: `'${file}' is not a readable Parquet file (${(e as Error).message})`, user: true });
  }
  let columns: string[];
  try {
    columns = parquetSchema(meta).children.map((c) => c.element.name);
    checkStructure(meta, buf.byteLength);
  } catch (e) {
    return void port.postMessage({ error: `'${file}' is not a readable Parquet file (${(e as Error).message})`, user: true });
  }
  if (!columns.includes(field)) return void port.postMessage({ error: `'${file}' has no column "${field}" (columns: ${columns.join(', ')}); set text_field in the recipe`, user: true });
  const groups = meta.row_groups.map((rg) => ({
    rows: Number(rg.num_rows),
    bytes: rg.columns.reduce((a, c) => a + Number(c.meta_data?.total_compressed_size ?? 0), 0),
  }));
  port.postMessage({ meta: { columns, groups, bytes: buf.byteLength } });
  const starts = [0];
  for (const g of groups) starts.push(starts[starts.length - 1] + g.rows);
  port.on('message', async (m: { rg: number }) => {
    const rowStart = starts[m.rg];
    const rowEnd = starts[m.rg + 1];
    try {
      const rows = await parquetReadObjects({ file: buf, metadata: meta, columns: [field], rowStart, rowEnd, compressors });
      // strings and nulls as they are; anything else as a marker (the caller only needs to know it is not text)
      port.postMessage({ rows: rows.map((r) => { const v = r[field]; return typeof v === 'string' || v == null ? v ?? null : { notString: true }; }) });
    } catch (e) {
      port.postMessage({ error: `'${file}' rows ${rowStart}..${rowEnd}: cannot decode (${(e as Error).message})`, user: true });
    }
  });
}

main().catch((e) => port.postMessage({ error: `'${file}': ${(e as Error).message}`, user: true }));
