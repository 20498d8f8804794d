/**
 * Training loader over prepared shards. Each of the B rows of a batch picks a source with the recipe's sampling
 * shares, then a uniformly random window of T+1 tokens inside one of that source's shards (windows cross document
 * boundaries, as in LLaMA's packed sequences). Everything is driven by one serialisable Rng, so the position is
 * {rng state, batches drawn} and resume continues with exactly the next batch.
 *
 * Prefetch: a worker thread runs the same sampler from the same state and fills a ring of shared-memory slots
 * ahead of the trainer. Each slot carries the Rng state after its batch, so state() always describes the next
 * batch the trainer will receive, however far the worker has read ahead. Batches are bit-identical with and
 * without prefetch (tested).
 */
import { readFileSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Worker, MessageChannel, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { Rng, type RngState } from '../util/rng.js';
import { UserError, quoteJson } from '../util/errors.js';
import type { Batch, BatchSource } from './source.js';
import { ShardReader } from './shard.js';
import { MANIFEST, MANIFEST_FORMAT, type Manifest } from './prepare.js';
import { planMixture } from './recipe.js';
import { prepareTextData, type TextData } from './text.js';
import type { Tokenizer } from '../tokenizer/types.js';

export interface MixtureSourceSpec {
  name: string;
  share: number;
  shards: string[];
}

export interface MixtureSpec {
  sources: MixtureSourceSpec[];
}

/** The deterministic sampler; used directly (no prefetch) and inside the prefetch worker. */
export class MixtureSampler {
  private readers: ShardReader[][];
  private cumShare: Float64Array;
  private windowsFor = new Map<number, Float64Array[]>();
  rng: Rng;
  drawn = 0;

  constructor(readonly spec: MixtureSpec, state: { rng: RngState | number; drawn?: number }) {
    const active = spec.sources.filter((s) => s.share > 0);
    if (active.length === 0) throw new UserError('the mixture has no source with a positive share');
    this.readers = spec.sources.map((s) => (s.share > 0 ? s.shards.map(sharedReader) : []));
    const total = spec.sources.reduce((a, s) => a + s.share, 0);
    this.cumShare = new Float64Array(spec.sources.length);
    let c = 0;
    spec.sources.forEach((s, i) => (this.cumShare[i] = c += s.share / total));
    this.cumShare[spec.sources.length - 1] = 1;
    this.rng = new Rng(state.rng);
    this.drawn = state.drawn ?? 0;
  }

  /** Per source, cumulative counts of window starts per shard for windows of `len` tokens. */
  private windows(len: number): Float64Array[] {
    let w = this.windowsFor.get(len);
    if (!w) {
      w = this.readers.map((rs, i) => {
        const cum = new Float64Array(rs.length);
        let c = 0;
        rs.forEach((r, j) => (cum[j] = c += Math.max(0, r.header.tokens - len + 1)));
        if (this.spec.sources[i].share > 0 && c === 0) {
          throw new UserError(`source '${this.spec.sources[i].name}' has no shard with ${len} tokens (one window of seq ${len - 1} + 1)`);
        }
        return cum;
      });
      this.windowsFor.set(len, w);
    }
    return w;
  }

  /** Fills out[B·(T+1)] with B windows; `sources`, if given, receives each row's source index. */
  fill(batch: number, seq: number, out: Int32Array, sources?: Int32Array): void {
    const len = seq + 1;
    const wins = this.windows(len);
    for (let b = 0; b < batch; b++) {
      const u = this.rng.next();
      let s = 0;
      while (this.cumShare[s] <= u) s++;
      const cum = wins[s];
      const r = this.rng.int(cum[cum.length - 1]);
      let lo = 0;
      let hi = cum.length - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (cum[mid] > r) hi = mid;
        else lo = mid + 1;
      }
      const start = r - (lo > 0 ? cum[lo - 1] : 0);
      this.readers[s][lo].read(start, len, out, b * len);
      if (sources) sources[b] = s;
    }
    this.drawn++;
  }

  /** Readers are shared per thread (see sharedReader) and stay open; nothing to release per sampler. */
  close(): void {}
}

const READERS = new Map<string, ShardReader>();

/** One open reader per shard file and thread, so fresh held-out sources each evaluation open no new files. */
export function sharedReader(path: string): ShardReader {
  let r = READERS.get(path);
  if (!r) {
    r = new ShardReader(path);
    READERS.set(path, r);
  }
  return r;
}

export function splitWindows(buf: Int32Array, batch: number, seq: number): Batch {
  const tokens = new Int32Array(batch * seq);
  const targets = new Int32Array(batch * seq);
  const len = seq + 1;
  for (let b = 0; b < batch; b++) {
    tokens.set(buf.subarray(b * len, b * len + seq), b * seq);
    targets.set(buf.subarray(b * len + 1, b * len + len), b * seq);
  }
  return { tokens, targets };
}

// slot layout (Int32): [status, drawnAfter, rng0..3 after, pad, pad, tokens...]
const SLOT_HEAD = 8;
const EMPTY = 0;
const FULL = 1;
const ERROR = 2;

export interface MixtureState {
  kind: 'mixture';
  seed: number;
  rng: RngState;
  drawn: number;
  fingerprint: string;
}

export interface MixtureOptions {
  /** Batches to read ahead on a worker thread; 0 = read synchronously. */
  prefetch?: number;
}

/** How long next() waits for the prefetch worker before giving up (it normally answers in milliseconds). */
const PREFETCH_TIMEOUT_MS = 300_000;

export class MixtureSource implements BatchSource {
  private sampler: MixtureSampler | null = null;
  private rngState: RngState;
  private drawn = 0;
  private worker: Worker | null = null;
  private port: MessagePort | null = null;
  private view: Int32Array | null = null;
  private shape = { batch: 0, seq: 0, slotInts: 0, slots: 0 };
  private consume = 0;
  readonly fingerprint: string;

  constructor(readonly spec: MixtureSpec, private seed: number, private opts: MixtureOptions = {}) {
    this.rngState = new Rng(seed).state();
    this.fingerprint = spec.sources.map((s) => `${s.name}:${s.share.toPrecision(12)}:${s.shards.length}`).join('|');
    // open and check every shard now, so a corrupt file fails before training starts
    new MixtureSampler(spec, { rng: this.rngState }).close();
  }

  next(batch: number, seq: number): Batch {
    const depth = this.opts.prefetch ?? 0;
    if (depth <= 0) {
      this.sampler ??= new MixtureSampler(this.spec, { rng: this.rngState, drawn: this.drawn });
      const buf = new Int32Array(batch * (seq + 1));
      this.sampler.fill(batch, seq, buf);
      this.rngState = this.sampler.rng.state();
      this.drawn = this.sampler.drawn;
      return splitWindows(buf, batch, seq);
    }
    if (!this.worker || this.shape.batch !== batch || this.shape.seq !== seq) this.startWorker(batch, seq, depth);
    const view = this.view!;
    const base = this.consume * this.shape.slotInts;
    const started = performance.now();
    for (;;) {
      const st = Atomics.load(view, base);
      if (st === FULL) break;
      if (st === ERROR) {
        const m = receiveMessageOnPort(this.port!);
        const msg = (m?.message as { error?: string; user?: boolean } | undefined) ?? {};
        this.stopWorker();
        const text = msg.error ?? 'prefetch worker failed';
        throw msg.user ? new UserError(text) : new Error(text);
      }
      Atomics.wait(view, base, EMPTY, 1000);
      // a batch takes milliseconds; a worker that died without reporting must not hang the run
      if (performance.now() - started > PREFETCH_TIMEOUT_MS) {
        this.stopWorker();
        throw new Error(`the data prefetch worker produced no batch in ${PREFETCH_TIMEOUT_MS / 1000} s`);
      }
    }
    const len = batch * (seq + 1);
    const b = splitWindows(view.subarray(base + SLOT_HEAD, base + SLOT_HEAD + len), batch, seq);
    this.drawn = view[base + 1];
    this.rngState = [view[base + 2] >>> 0, view[base + 3] >>> 0, view[base + 4] >>> 0, view[base + 5] >>> 0];
    Atomics.store(view, base, EMPTY);
    Atomics.notify(view, base);
    this.consume = (this.consume + 1) % this.shape.slots;
    return b;
  }

  private startWorker(batch: number, seq: number, slots: number): void {
    this.stopWorker();
    const slotInts = SLOT_HEAD + batch * (seq + 1);
    const sab = new SharedArrayBuffer(4 * slotInts * slots);
    const { port1, port2 } = new MessageChannel();
    this.worker = new Worker(new URL('./prefetch-worker.js', import.meta.url), {
      workerData: { spec: this.spec, sab, slots, slotInts, batch, seq, rng: this.rngState, drawn: this.drawn, port: port2 },
      transferList: [port2],
    });
    this.worker.unref();
    this.worker.on('error', () => {
      /* surfaced through the ERROR slot */
    });
    this.port = port1;
    this.port.unref();
    this.view = new Int32Array(sab);
    this.shape = { batch, seq, slotInts, slots };
    this.consume = 0;
  }

  private stopWorker(): void {
    if (this.worker) {
      void this.worker.terminate();
      this.port?.close();
    }
    this.worker = null;
    this.port = null;
    this.view = null;
  }

  state(): MixtureState {
    return { kind: 'mixture', seed: this.seed, rng: [...this.rngState] as RngState, drawn: this.drawn, fingerprint: this.fingerprint };
  }

  restore(state: unknown): void {
    const s = state as MixtureState;
    if (!s || s.kind !== 'mixture' || !Array.isArray(s.rng) || s.rng.length !== 4) {
      throw new UserError('checkpoint data position is not a prepared-data (mixture) position: resume with the same --data');
    }
    if (s.fingerprint !== this.fingerprint) throw new UserError('checkpoint was trained on a different prepared-data mixture: resume needs the same --data');
    this.stopWorker();
    this.sampler?.close();
    this.sampler = null;
    this.seed = s.seed;
    this.rngState = [...s.rng] as RngState;
    this.drawn = s.drawn;
  }

  close(): void {
    this.stopWorker();
    this.sampler?.close();
    this.sampler = null;
  }
}

export function isPreparedDir(path: string): boolean {
  return existsSync(path) && statSync(path).isDirectory() && existsSync(join(path, MANIFEST));
}

export function readManifest(dir: string): Manifest {
  let m: Manifest;
  try {
    m = JSON.parse(readFileSync(join(dir, MANIFEST), 'utf8')) as Manifest;
  } catch (e) {
    throw new UserError(`'${join(dir, MANIFEST)}' is not a readable manifest: ${(e as Error).message}`);
  }
  if (m?.format !== MANIFEST_FORMAT || m.version !== 1 || !Array.isArray(m.sources)) throw new UserError(`'${dir}' is not a llama-ts prepared data directory (bad manifest)`);
  checkManifest(m, join(dir, MANIFEST));
  return m;
}

/**
 * The fields of a manifest that reading shards and planning the mixture rely on, checked up front: a one-line
 * UserError naming the file and the field (`sources[0].heldOut`) instead of a TypeError deep in the loader.
 */
function checkManifest(m: Manifest, file: string): void {
  const bad = (field: string, v: unknown, want: string): never => {
    throw new UserError(`'${file}': ${field} must be ${want}, got ${quoteJson(v)}`);
  };
  const obj = (v: unknown, field: string) => (typeof v === 'object' && v !== null && !Array.isArray(v) ? v as Record<string, unknown> : bad(field, v, 'an object'));
  const count = (v: unknown, field: string) => (Number.isSafeInteger(v) && (v as number) >= 0 ? v as number : bad(field, v, 'a non-negative integer'));
  const name = (v: unknown, field: string) => (typeof v === 'string' && v !== '' && v !== '.' && v !== '..' && !/[/\\\0]/.test(v) ? v : bad(field, v, 'a file name'));
  const tok = obj(m.tokenizer, 'tokenizer');
  if (!Number.isSafeInteger(tok.vocabSize) || (tok.vocabSize as number) < 1) bad('tokenizer.vocabSize', tok.vocabSize, 'a positive integer');
  count(tok.bosId, 'tokenizer.bosId');
  count(tok.eosId, 'tokenizer.eosId');
  const recipe = obj(m.recipe, 'recipe');
  if (typeof recipe.totalTokens !== 'number' || !(recipe.totalTokens >= 0)) bad('recipe.totalTokens', recipe.totalTokens, 'a non-negative number');
  m.sources.forEach((s0, i) => {
    const s = obj(s0, `sources[${i}]`);
    name(s.name, `sources[${i}].name`);
    for (const k of ['weight', 'epochs'] as const) {
      if (s[k] !== undefined && (typeof s[k] !== 'number' || !Number.isFinite(s[k]) || (s[k] as number) < 0)) bad(`sources[${i}].${k}`, s[k], 'a non-negative number');
    }
    const ingest = obj(s.ingest, `sources[${i}].ingest`);
    count(ingest.bytes, `sources[${i}].ingest.bytes`);
    obj(ingest.badRecords, `sources[${i}].ingest.badRecords`);
    const clean = obj(s.clean, `sources[${i}].clean`);
    for (const k of ['input', 'output', 'exactDuplicates', 'tooShort', 'lowAlpha', 'repeatedLines'] as const) {
      const st = obj(clean[k], `sources[${i}].clean.${k}`);
      count(st.docs, `sources[${i}].clean.${k}.docs`);
      count(st.chars, `sources[${i}].clean.${k}.chars`);
    }
    obj(clean.normalize, `sources[${i}].clean.normalize`);
    obj(clean.lineDedup, `sources[${i}].clean.lineDedup`);
    for (const split of ['train', 'heldOut'] as const) {
      const f = `sources[${i}].${split}`;
      const sp = obj(s[split], f);
      count(sp.tokens, `${f}.tokens`);
      count(sp.docs, `${f}.docs`);
      if (!Array.isArray(sp.shards)) bad(`${f}.shards`, sp.shards, 'an array');
      (sp.shards as unknown[]).forEach((sh0, j) => {
        const sh = obj(sh0, `${f}.shards[${j}]`);
        name(sh.file, `${f}.shards[${j}].file`);
        count(sh.tokens, `${f}.shards[${j}].tokens`);
        count(sh.docs, `${f}.shards[${j}].docs`);
      });
    }
  });
}

/** The recipe's sampling shares for the tokens actually prepared. */
export function manifestShares(m: Manifest): Map<string, number> {
  const plan = planMixture(m.sources.map((s) => ({ name: s.name, weight: s.weight, epochs: s.epochs, tokens: s.train.tokens })), m.recipe.totalTokens);
  return new Map(plan.rows.map((r) => [r.name, r.share]));
}

export function mixtureSpec(dir: string, m: Manifest, split: 'train' | 'heldOut', minTokens = 0): MixtureSpec {
  const shares = manifestShares(m);
  return {
    sources: m.sources.map((s) => {
      const shards = s[split].shards.filter((sh) => sh.tokens >= minTokens).map((sh) => join(dir, s.name, sh.file));
      return { name: s.name, share: shards.length ? shares.get(s.name)! : 0, shards };
    }),
  };
}

/**
 * Training data for `llama-ts train --data PATH`: a prepared directory (recognised by its manifest) gives a
 * mixture loader with prefetch; anything else goes to the plain-text path (prepareTextData).
 */
export function openTrainingData(path: string, tok: Tokenizer, seed: number, seq: number, opts: MixtureOptions = { prefetch: 2 }): TextData {
  if (!isPreparedDir(path)) return prepareTextData(path, tok, seed, seq);
  const m = readManifest(path);
  if (m.tokenizer.vocabSize !== tok.vocabSize || m.tokenizer.bosId !== tok.bosId || m.tokenizer.eosId !== tok.eosId) {
    const what = m.tokenizer.kind === 'bytes' ? 'the byte tokenizer' : `tokenizer '${m.tokenizer.path}'`;
    throw new UserError(`'${path}' was prepared with ${what} (vocab ${m.tokenizer.vocabSize}), not the one given (vocab ${tok.vocabSize}); pass the same --tokenizer`);
  }
  const trainSpec = mixtureSpec(path, m, 'train', seq + 1);
  for (const s of trainSpec.sources) {
    const full = m.sources.find((x) => x.name === s.name)!;
    if (s.shards.length === 0 && full.train.tokens > 0) throw new UserError(`source '${s.name}' in '${path}' has no shard of seq ${seq} + 1 tokens`);
  }
  const heldSpec = mixtureSpec(path, m, 'heldOut', seq + 1);
  const heldOk = heldSpec.sources.some((s) => s.share > 0);
  return {
    train: new MixtureSource(trainSpec, seed, opts),
    heldOut: heldOk ? () => new MixtureSource(heldSpec, seed ^ 0x5eed, { prefetch: 0 }) : () => {
      throw new UserError(`'${path}' has no held-out shard of seq ${seq} + 1 tokens; use --eval-batches 0 or a larger held_out_fraction`);
    },
    trainTokens: m.sources.reduce((a, s) => a + s.train.tokens, 0),
    heldOutTokens: m.sources.reduce((a, s) => a + s.heldOut.tokens, 0),
  };
}
