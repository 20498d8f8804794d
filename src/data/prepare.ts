/**
 * `data prepare`: for each recipe source, ingest → clean → split (every k-th kept document held out) → tokenize
 * (worker threads) → shards, then a manifest. Everything is written into a staging directory next to the output
 * and renamed into place only when complete, so a failure leaves nothing half-written; each shard is itself
 * written atomically. The manifest's presence marks a complete prepared directory.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { writeFileAtomic, fsyncDir } from '../util/fsutil.js';
import { UserError } from '../util/errors.js';
import { checkThreadCount } from '../util/hardware.js';
import { Progress } from '../util/progress.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { Cleaner, type CleanReport } from './clean.js';
import { ingest, newCounters, sourceBytes, type IngestCounters } from './ingest.js';
import type { Recipe, SourceRecipe } from './recipe.js';
import { bytesPerTokenFor, writeShard } from './shard.js';
import { describeTokenizer, loadTokenizer, type TokenizerInfo } from './tokenizer.js';

export const MANIFEST = 'manifest.json';
export const MANIFEST_FORMAT = 'llama-ts-data';

export interface ShardEntry {
  file: string;
  tokens: number;
  docs: number;
}

export interface SplitEntry {
  tokens: number;
  docs: number;
  shards: ShardEntry[];
}

export interface SourceEntry {
  name: string;
  format: string;
  weight?: number;
  epochs?: number;
  train: SplitEntry;
  heldOut: SplitEntry;
  ingest: IngestCounters;
  clean: CleanReport;
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  version: 1;
  createdAt: string;
  recipe: { name: string; path: string | null; seed: number; totalTokens: number; heldOutFraction: number; repeatWarning: number };
  tokenizer: TokenizerInfo;
  dtype: 'uint16' | 'uint32';
  sources: SourceEntry[];
}

/** BOS + ids + EOS for each document, concatenated, with per-document lengths. */
export function encodeDocs(docs: string[], tok: Tokenizer): { tokens: Uint32Array; lengths: Uint32Array } {
  const parts = docs.map((d) => tok.encode(d));
  const lengths = Uint32Array.from(parts, (p) => p.length + 2);
  const tokens = new Uint32Array(lengths.reduce((a, b) => a + b, 0));
  let o = 0;
  for (const p of parts) {
    tokens[o++] = tok.bosId;
    tokens.set(p, o);
    o += p.length;
    tokens[o++] = tok.eosId;
  }
  return { tokens, lengths };
}

type Encoded = { tokens: Uint32Array; lengths: Uint32Array };

/** Encodes document batches on worker threads (or inline with 0 workers); results come back in submission order. */
class EncodePool {
  private workers: Worker[] = [];
  private waiting = new Map<number, { resolve: (r: Encoded) => void; reject: (e: Error) => void }>();
  private nextId = 0;
  private ready: Promise<void>;

  constructor(n: number, private tok: Tokenizer, tokenizerPath: string | null) {
    const readies: Promise<void>[] = [];
    for (let i = 0; i < n; i++) {
      const w = new Worker(new URL('./tokenize-worker.js', import.meta.url), { workerData: { tokenizer: tokenizerPath } });
      readies.push(new Promise((res, rej) => {
        w.once('error', rej);
        const onReady = (m: { ready?: boolean }) => {
          if (m.ready) {
            w.off('message', onReady);
            res();
          }
        };
        w.on('message', onReady);
      }));
      w.on('message', (m: { id?: number; tokens?: Uint32Array; lengths?: Uint32Array; error?: string }) => {
        if (m.id === undefined) return;
        const p = this.waiting.get(m.id);
        this.waiting.delete(m.id);
        if (!p) return;
        if (m.error) p.reject(new Error(m.error));
        else p.resolve({ tokens: m.tokens!, lengths: m.lengths! });
      });
      w.on('error', (e) => {
        for (const p of this.waiting.values()) p.reject(e);
        this.waiting.clear();
      });
      this.workers.push(w);
    }
    this.ready = Promise.all(readies).then(() => undefined);
  }

  async encode(docs: string[]): Promise<Encoded> {
    if (this.workers.length === 0) return encodeDocs(docs, this.tok);
    await this.ready;
    const id = this.nextId++;
    const w = this.workers[id % this.workers.length];
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      w.postMessage({ id, docs });
    });
  }

  get size(): number {
    return this.workers.length;
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/** Accumulates documents and writes a shard whenever `shardTokens` is reached (shards end on document boundaries). */
class ShardWriter {
  private chunks: Uint32Array[] = [];
  private lengths: number[] = [];
  private pending = 0;
  readonly entry: SplitEntry = { tokens: 0, docs: 0, shards: [] };

  constructor(private dir: string, private prefix: string, private vocabSize: number, private shardTokens: number) {}

  add(tokens: Uint32Array, lengths: ArrayLike<number>): void {
    let o = 0;
    for (let i = 0; i < lengths.length; i++) {
      const n = lengths[i];
      this.chunks.push(tokens.subarray(o, o + n));
      this.lengths.push(n);
      this.pending += n;
      o += n;
      if (this.pending >= this.shardTokens) this.flush();
    }
  }

  flush(): void {
    if (this.lengths.length === 0) return;
    const arr = bytesPerTokenFor(this.vocabSize) === 2 ? new Uint16Array(this.pending) : new Uint32Array(this.pending);
    const starts = new Float64Array(this.lengths.length + 1);
    let o = 0;
    for (let i = 0; i < this.chunks.length; i++) {
      arr.set(this.chunks[i], o);
      o += this.chunks[i].length;
      starts[i + 1] = o;
    }
    const file = `${this.prefix}-${String(this.entry.shards.length).padStart(5, '0')}.bin`;
    writeShard(join(this.dir, file), arr, starts, this.vocabSize);
    this.entry.shards.push({ file, tokens: this.pending, docs: this.lengths.length });
    this.entry.tokens += this.pending;
    this.entry.docs += this.lengths.length;
    this.chunks = [];
    this.lengths = [];
    this.pending = 0;
  }
}

export interface PrepareOptions {
  recipe: Recipe;
  out: string;
  tokenizerPath?: string | null;
  /** Worker threads for tokenizing; 0 = inline. Default: min(4, cores). */
  workers?: number;
  /** Replace an existing prepared directory. */
  force?: boolean;
  quiet?: boolean;
  /** Documents per tokenizer batch. */
  batchDocs?: number;
}

export interface PrepareResult {
  manifest: Manifest;
  seconds: number;
  bytesIn: number;
  tokens: number;
  workers: number;
}

function fmtRate(bytes: number, s: number): string {
  return `${(bytes / 1e6 / Math.max(s, 1e-9)).toFixed(2)} MB/s`;
}

async function prepareSource(
  src: SourceRecipe, recipe: Recipe, pool: EncodePool, tok: Tokenizer, stage: string, o: PrepareOptions,
): Promise<SourceEntry> {
  const dir = join(stage, src.name);
  mkdirSync(dir, { recursive: true });
  const counters = newCounters();
  const cleaner = new Cleaner(src.clean);
  const train = new ShardWriter(dir, 'train', tok.vocabSize, recipe.shardTokens);
  const held = new ShardWriter(dir, 'heldout', tok.vocabSize, recipe.shardTokens);
  const k = recipe.heldOutFraction > 0 ? Math.max(2, Math.round(1 / recipe.heldOutFraction)) : 0;
  const total = sourceBytes(src);
  const progress = o.quiet ? null : new Progress(Math.max(1, Math.ceil(total / 1024)), `prepare ${src.name} (KiB)`);
  const t0 = performance.now();
  const batchDocs = o.batchDocs ?? 64;
  // batches in flight, in order; each carries which documents are held out
  const inflight: { p: Promise<Encoded>; held: boolean[] }[] = [];
  const drainOne = async () => {
    const b = inflight.shift()!;
    const r = await b.p;
    let off = 0;
    for (let i = 0; i < r.lengths.length; i++) {
      const n = r.lengths[i];
      (b.held[i] ? held : train).add(r.tokens.subarray(off, off + n), [n]);
      off += n;
    }
  };
  let docs: string[] = [];
  let heldFlags: boolean[] = [];
  let kept = 0;
  const submit = async () => {
    if (docs.length === 0) return;
    inflight.push({ p: pool.encode(docs), held: heldFlags });
    docs = [];
    heldFlags = [];
    while (inflight.length >= Math.max(2, 2 * pool.size)) await drainOne();
  };
  let lastUpdate = 0;
  for await (const d of ingest(src, counters)) {
    const text = cleaner.clean(d.text);
    if (text !== null) {
      docs.push(text);
      heldFlags.push(k > 0 && kept % k === k - 1);
      kept++;
      if (docs.length >= batchDocs) await submit();
    }
    const now = performance.now();
    if (progress && now - lastUpdate > 200) {
      lastUpdate = now;
      progress.update(Math.min(Math.ceil(total / 1024), Math.floor(counters.bytes / 1024)), fmtRate(counters.bytes, (now - t0) / 1000));
    }
  }
  await submit();
  while (inflight.length) await drainOne();
  train.flush();
  held.flush();
  progress?.update(Math.max(1, Math.ceil(total / 1024)), fmtRate(counters.bytes, (performance.now() - t0) / 1000));
  progress?.done();
  if (train.entry.tokens === 0) throw new UserError(`source '${src.name}': no documents left after cleaning (${cleaner.report.input.docs} read); loosen its clean settings`);
  return { name: src.name, format: src.format, weight: src.weight, epochs: src.epochs, train: train.entry, heldOut: held.entry, ingest: counters, clean: cleaner.report };
}

/** True when a process with this id exists (EPERM: it exists but belongs to someone else). */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the staging (`.<out>.partial-<pid>`) and replaced (`.<out>.old-<pid>`) directories that a prepare killed
 * before its cleanup (kill -9, power loss) left beside `out`, when their process is gone. Returns their names.
 */
export function removeStaleStaging(out: string): string[] {
  const parent = dirname(out);
  if (!existsSync(parent)) return [];
  const base = basename(out);
  const removed: string[] = [];
  for (const d of readdirSync(parent)) {
    if (!d.startsWith(`.${base}.`)) continue;
    const m = /^\.(partial|old)-(\d+)$/.exec(d.slice(base.length + 1));
    if (!m) continue;
    const pid = Number(m[2]);
    if (pid !== process.pid && processAlive(pid)) continue;
    rmSync(join(parent, d), { recursive: true, force: true });
    removed.push(d);
  }
  return removed;
}

export async function prepareData(o: PrepareOptions): Promise<PrepareResult> {
  const out = resolve(o.out);
  if (existsSync(out)) {
    const entries = readdirSync(out);
    if (entries.length > 0 && !o.force) {
      throw new UserError(entries.includes(MANIFEST) ? `'${o.out}' already holds prepared data: pass --force to replace it` : `'${o.out}' exists and is not empty: choose another --out`);
    }
  }
  // check every source before spending time on any
  for (const s of o.recipe.sources) sourceBytes(s);
  const tok = await loadTokenizer(o.tokenizerPath);
  const workers = o.workers ?? Math.min(4, availableParallelism());
  if (!Number.isInteger(workers) || workers < 0) throw new UserError(`--workers must be a non-negative integer, got ${workers}`);
  checkThreadCount(workers, '--workers');
  mkdirSync(dirname(out), { recursive: true });
  removeStaleStaging(out);
  const stage = join(dirname(out), `.${basename(out)}.partial-${process.pid}`);
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(stage);
  const pool = new EncodePool(workers, tok, o.tokenizerPath ?? null);
  const t0 = performance.now();
  // Ctrl-C: remove the staging directory, so an interrupted prepare leaves nothing behind either
  const onSignal = () => {
    rmSync(stage, { recursive: true, force: true });
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const sources: SourceEntry[] = [];
    for (const src of o.recipe.sources) sources.push(await prepareSource(src, o.recipe, pool, tok, stage, o));
    const r = o.recipe;
    const manifest: Manifest = {
      format: MANIFEST_FORMAT, version: 1, createdAt: new Date().toISOString(),
      recipe: { name: r.name, path: r.path, seed: r.seed, totalTokens: r.totalTokens, heldOutFraction: r.heldOutFraction, repeatWarning: r.repeatWarning },
      tokenizer: describeTokenizer(tok, o.tokenizerPath), dtype: bytesPerTokenFor(tok.vocabSize) === 2 ? 'uint16' : 'uint32', sources,
    };
    writeFileAtomic(join(stage, MANIFEST), [JSON.stringify(manifest, null, 1) + '\n']);
    fsyncDir(stage);
    if (existsSync(out)) {
      const old = join(dirname(out), `.${basename(out)}.old-${process.pid}`);
      renameSync(out, old);
      renameSync(stage, out);
      rmSync(old, { recursive: true, force: true });
    } else {
      renameSync(stage, out);
    }
    fsyncDir(dirname(out));
    const seconds = (performance.now() - t0) / 1000;
    return {
      manifest, seconds, workers,
      bytesIn: sources.reduce((a, s) => a + s.ingest.bytes, 0),
      tokens: sources.reduce((a, s) => a + s.train.tokens + s.heldOut.tokens, 0),
    };
  } catch (e) {
    rmSync(stage, { recursive: true, force: true });
    throw e;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await pool.close();
  }
}
