/**
 * Batch sources for training. A source hands out B×T windows of next-token pairs, deterministically for its seed,
 * and exposes its position as JSON so a checkpoint can resume with exactly the next batch.
 */
import { Rng, type RngState } from '../util/rng.js';
import { UserError } from '../util/errors.js';
import type { Tokenizer } from '../tokenizer/types.js';

export interface Batch {
  tokens: Int32Array; // [B·T] inputs
  targets: Int32Array; // [B·T] next tokens
}

export interface BatchSource {
  next(batch: number, seq: number): Batch;
  /**
   * True when some targets are -1 (not trained on: an SFT prompt, padding). A step then averages the loss over the
   * targets that count instead of over every position.
   */
  readonly masked?: boolean;
  /** JSON-serialisable position. */
  state(): unknown;
  restore(state: unknown): void;
}

/** Random windows from one token stream (documents joined with BOS), as llama2.c and nanoGPT sample. */
export class TokenStreamSource implements BatchSource {
  private rng: Rng;
  private drawn = 0;

  constructor(readonly stream: Int32Array, private seed: number) {
    this.rng = new Rng(seed);
  }

  next(batch: number, seq: number): Batch {
    if (this.stream.length < seq + 1) {
      throw new UserError(`data has ${this.stream.length} tokens, fewer than one window of seq ${seq} + 1`);
    }
    const tokens = new Int32Array(batch * seq);
    const targets = new Int32Array(batch * seq);
    for (let b = 0; b < batch; b++) {
      const start = this.rng.int(this.stream.length - seq);
      tokens.set(this.stream.subarray(start, start + seq), b * seq);
      targets.set(this.stream.subarray(start + 1, start + seq + 1), b * seq);
    }
    this.drawn++;
    return { tokens, targets };
  }

  state(): { kind: 'stream'; seed: number; rng: RngState; drawn: number; length: number } {
    return { kind: 'stream', seed: this.seed, rng: this.rng.state(), drawn: this.drawn, length: this.stream.length };
  }

  restore(state: unknown): void {
    const s = state as ReturnType<TokenStreamSource['state']>;
    if (!s || s.kind !== 'stream' || !Array.isArray(s.rng) || s.rng.length !== 4) throw new UserError('checkpoint data position is not a token-stream position');
    if (s.length !== this.stream.length) {
      throw new UserError(`checkpoint was trained on data of ${s.length} tokens, this data has ${this.stream.length}: resume needs the same data`);
    }
    this.seed = s.seed;
    this.rng = new Rng(s.rng);
    this.drawn = s.drawn;
  }
}

/**
 * Rank `rank` of `world` data-parallel ranks: of every `world` consecutive batches of the inner source, this rank
 * takes the rank-th. The ranks see disjoint batches, deterministically, and together exactly the batches one
 * process with `world`× the gradient accumulation would see (rank r's k-th batch is that process's batch
 * k·world + r). Every rank draws every batch, so the state (and a checkpoint's data position) is the same on all.
 */
export class RankSlice implements BatchSource {
  readonly masked: boolean;
  constructor(readonly inner: BatchSource, readonly rank: number, readonly world: number) {
    this.masked = Boolean(inner.masked);
    if (!(Number.isInteger(world) && world >= 1 && Number.isInteger(rank) && rank >= 0 && rank < world)) throw new RangeError(`rank ${rank} of ${world}`);
  }
  next(batch: number, seq: number): Batch {
    let mine: Batch | null = null;
    for (let r = 0; r < this.world; r++) {
      const b = this.inner.next(batch, seq);
      if (r === this.rank) mine = b;
    }
    return mine as Batch;
  }
  state(): unknown {
    return this.inner.state();
  }
  restore(state: unknown): void {
    this.inner.restore(state);
  }
}

/** Joins documents into one stream, each preceded by BOS. */
export function tokenizeDocuments(docs: string[], tok: Tokenizer): Int32Array {
  const parts: number[][] = [];
  let n = 0;
  for (const d of docs) {
    const ids = tok.encode(d);
    parts.push(ids);
    n += ids.length + 1;
  }
  const out = new Int32Array(n);
  let o = 0;
  for (const ids of parts) {
    out[o++] = tok.bosId;
    out.set(ids, o);
    o += ids.length;
  }
  return out;
}

/**
 * Splits documents into train and held-out sets: every k-th document is held out (k = round(1/fraction)),
 * so both sides see every genre of an ordered corpus.
 */
export function splitDocuments(docs: string[], heldOutFraction: number): { train: string[]; heldOut: string[] } {
  if (docs.length < 2) {
    // one document: hold out its tail
    const d = docs[0] ?? '';
    const cut = Math.floor(d.length * (1 - heldOutFraction));
    return { train: [d.slice(0, cut)], heldOut: [d.slice(cut)] };
  }
  const k = Math.max(2, Math.round(1 / heldOutFraction));
  const train: string[] = [];
  const heldOut: string[] = [];
  docs.forEach((d, i) => (i % k === k - 1 ? heldOut : train).push(d));
  return { train, heldOut };
}
