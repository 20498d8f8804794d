/**
 * Inference with a key/value cache: prefill (many tokens of one or more sequences at once) and incremental decode
 * (one new token per sequence per step), sampling, stop conditions and streaming.
 *
 * The cache of one sequence is [layers, maxSeq, nKvHeads·headDim] for K and the same for V (grouped-query aware:
 * only the KV heads are stored). The layers are the model's own blocks (Llama.blockForward) with attention reading
 * the caches (CachedAttention): this file holds the caches, batching and sampling, not a second transformer.
 */
import type { Backend, FloatArray } from '../kernels/backend.js';
import { CachedAttention, type BlockActs, type KvRows, type Llama } from '../model/llama.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { DecodeStream } from '../tokenizer/stream.js';
import { Rng } from '../util/rng.js';
import { UserError } from '../util/errors.js';
import { sampleToken, applyRepetitionPenalty, type SamplingOptions } from './sampler.js';

/** How a KV cache holds its rows: float32 (the default; exact) or IEEE half (llama.cpp's default: half the bytes). */
export type KvCacheType = 'f32' | 'f16';
export const KV_CACHE_TYPES: readonly KvCacheType[] = ['f32', 'f16'];

export class KVCache implements KvRows {
  readonly k: FloatArray | Uint16Array;
  readonly v: FloatArray | Uint16Array;
  /** Number of positions filled. */
  length = 0;
  readonly rowWidth: number;
  /** headDim: the width of one kv head's rows (an F16 cache keeps each head's positions contiguous). */
  constructor(readonly nLayers: number, readonly maxSeq: number, kvWidth: number, backend: Backend, readonly type: KvCacheType = 'f32', readonly headDim = kvWidth) {
    if (kvWidth % headDim !== 0) throw new RangeError(`KVCache: row width ${kvWidth} is not a multiple of the head size ${headDim}`);
    this.rowWidth = kvWidth;
    const n = nLayers * maxSeq * kvWidth;
    this.k = type === 'f16' ? new Uint16Array(n) : backend.alloc(n);
    this.v = type === 'f16' ? new Uint16Array(n) : backend.alloc(n);
  }
  /**
   * Makes this cache hold the first n positions of src (same type, same layers and row width): float32 caches are
   * [layers, maxSeq, row], F16 ones head-major [layers, kv heads, maxSeq, headDim] (KvRows).
   */
  copyPrefix(src: KVCache, n: number): void {
    if (src.type !== this.type || src.nLayers !== this.nLayers || src.rowWidth !== this.rowWidth || src.headDim !== this.headDim) throw new TypeError('copyPrefix: caches of different shapes');
    if (n > src.length || n > this.maxSeq) throw new RangeError(`copyPrefix: ${n} positions (source holds ${src.length}, room for ${this.maxSeq})`);
    const w = this.rowWidth;
    const runs = this.type === 'f16' ? w / this.headDim : 1; // contiguous runs of positions per layer
    const run = this.type === 'f16' ? this.headDim : w; // elements per position in one run
    for (let l = 0; l < this.nLayers; l++) {
      for (let g = 0; g < runs; g++) {
        const so = (l * runs + g) * src.maxSeq * run, d = (l * runs + g) * this.maxSeq * run;
        this.k.set(src.k.subarray(so, so + n * run), d);
        this.v.set(src.v.subarray(so, so + n * run), d);
      }
    }
    this.length = n;
  }
  /** Bytes of one position's keys and values over all layers. */
  get bytesPerPosition(): number {
    return 2 * this.nLayers * this.rowWidth * this.k.BYTES_PER_ELEMENT;
  }
  reset(): void {
    this.length = 0;
  }
}

export interface StepItem {
  cache: KVCache;
  tokens: ArrayLike<number>;
}

/** Decode scratch: one set of block buffers for all layers, the residual updated in place (x = xMid). */
interface Scratch {
  rows: number;
  block: BlockActs;
  xn: FloatArray;
  rstd: FloatArray;
}

/** Runs a Llama's blocks incrementally over KV caches. Stateless apart from scratch buffers; caches hold the state. */
export class Decoder {
  readonly backend: Backend;
  private scratch: Scratch | null = null;
  private logitsBufs: FloatArray[] = [];
  /** 'last' logits of a reusing step: one [items, V] buffer and a view per item (the same views every step). */
  private lastLogits: FloatArray | null = null;
  private lastViews: FloatArray[] = [];

  /** The type of the caches newCache makes (`--kv-cache`). */
  readonly kvCache: KvCacheType;

  /** One backend call per layer for one-token steps of one float32 cache where the model allows (Llama.decodeLayer). */
  readonly fuseLayers: boolean;

  constructor(readonly model: Llama, o: { kvCache?: KvCacheType; fuseLayers?: boolean } = {}) {
    this.backend = model.backend;
    this.kvCache = o.kvCache ?? 'f32';
    this.fuseLayers = o.fuseLayers ?? true;
    if (!KV_CACHE_TYPES.includes(this.kvCache)) throw new UserError(`--kv-cache: ${String(this.kvCache)} is not one of ${KV_CACHE_TYPES.join(', ')}`);
  }

  get config() {
    return this.model.config;
  }

  newCache(maxSeq = this.model.config.maxSeqLen): KVCache {
    if (maxSeq > this.model.config.maxSeqLen) throw new UserError(`cache of ${maxSeq} positions exceeds the model's context (${this.model.config.maxSeqLen})`);
    const c = this.model.config;
    return new KVCache(c.nLayers, maxSeq, this.model.sz.kw, this.backend, this.kvCache, this.model.sz.hd);
  }

  private buffers(rows: number): Scratch {
    if (this.scratch && this.scratch.rows >= rows) return this.scratch;
    const be = this.backend;
    const { D, qw, kw, F } = this.model.sz;
    this.scratch = null;
    const x = be.alloc(rows * D);
    const xn = be.alloc(rows * D);
    const rstd = be.alloc(rows);
    const block: BlockActs = {
      x, xMid: x, xn1: xn, xn2: xn, rstd1: rstd, rstd2: rstd, lse: be.alloc(0),
      q: be.alloc(rows * qw), k: be.alloc(rows * kw), v: be.alloc(rows * kw), att: be.alloc(rows * qw),
      h1: be.alloc(rows * F), h3: be.alloc(rows * F), gate: be.alloc(rows * F),
    };
    this.scratch = { rows, block, xn, rstd };
    return this.scratch;
  }

  /**
   * Appends each item's tokens to its cache and returns logits: for each item either its last row [V] ('last')
   * or every new row [n, V] ('all'). With reuse = true the returned arrays belong to the decoder and are overwritten
   * by its next reusing step (no allocation per token: the decode loops consume the logits at once).
   */
  step(items: StepItem[], logitsFor: 'last' | 'all' = 'last', reuse = false): FloatArray[] {
    const m = this.model;
    const c = m.config;
    const be = this.backend;
    let N = 0;
    for (const it of items) {
      if (it.tokens.length === 0) throw new RangeError('step: an item has no tokens');
      if (it.cache.length + it.tokens.length > it.cache.maxSeq) {
        throw new UserError(`sequence of ${it.cache.length + it.tokens.length} tokens exceeds the context of ${it.cache.maxSeq}`);
      }
      for (let i = 0; i < it.tokens.length; i++) {
        const t = it.tokens[i];
        if (!Number.isInteger(t) || t < 0 || t >= c.vocabSize) throw new UserError(`token id ${t} is outside the vocabulary (0..${c.vocabSize - 1})`);
      }
      N += it.tokens.length;
    }
    const s = this.buffers(N);
    const ids = new Int32Array(N);
    {
      let r = 0;
      for (const it of items) for (let i = 0; i < it.tokens.length; i++) ids[r++] = it.tokens[i];
    }
    m.embed(s.block.x, ids);
    const one = items.length === 1 && N === 1 ? items[0].cache : null;
    if (one && this.fuseLayers && !(one.k instanceof Uint16Array) && m.canDecodeFused()) {
      // batch-1 decode: each layer in one native call (the same bits as blockForward below)
      for (let l = 0; l < c.nLayers; l++) m.decodeLayer(l, s.block, one);
    } else {
      const attn = new CachedAttention(items.map((it) => it.cache), items.map((it) => it.tokens.length));
      for (let l = 0; l < c.nLayers; l++) m.blockForward(l, s.block, s.block.x, attn);
    }
    for (const it of items) it.cache.length += it.tokens.length;
    m.finalNorm(s.xn, s.rstd, s.block.x, N);
    const V = c.vocabSize;
    const D = c.dim;
    if (logitsFor === 'last') {
      // one head matmul over every item's last row: a batch of decodes reads the head's weights once, not per item.
      // The last rows move to the front of xn in place (item k's last row is at or after row k).
      const B = items.length;
      let r = 0;
      items.forEach((it, k) => {
        r += it.tokens.length;
        if (r - 1 !== k) s.xn.copyWithin(k * D, (r - 1) * D, r * D);
      });
      if (!reuse) {
        const lg = be.alloc(B * V);
        m.head(lg, s.xn.subarray(0, B * D), B);
        m.params.check();
        return items.map((_, k) => lg.subarray(k * V, (k + 1) * V));
      }
      if (!this.lastLogits || this.lastLogits.length < B * V) {
        this.lastLogits = be.alloc(B * V);
        this.lastViews = [];
      }
      for (let k = this.lastViews.length; k < B; k++) this.lastViews.push(this.lastLogits.subarray(k * V, (k + 1) * V));
      m.head(this.lastLogits.subarray(0, B * V), s.xn.subarray(0, B * D), B);
      m.params.check();
      return this.lastViews.slice(0, B);
    }
    const out: FloatArray[] = [];
    let r0 = 0;
    for (const it of items) {
      const n = it.tokens.length;
      let lg: FloatArray;
      if (reuse) {
        const k = out.length;
        if (!this.logitsBufs[k] || this.logitsBufs[k].length !== n * V) this.logitsBufs[k] = be.alloc(n * V);
        lg = this.logitsBufs[k];
      } else {
        lg = be.alloc(n * V);
      }
      m.head(lg, s.xn.subarray(r0 * D, (r0 + n) * D), n);
      out.push(lg);
      r0 += n;
    }
    m.params.check(); // mapped weights: the file was not truncated under this step (else a one-line error, not its logits)
    return out;
  }

  /** Prefill in chunks of at most `chunk` tokens; returns the logits after the last token. */
  prefill(cache: KVCache, tokens: ArrayLike<number>, chunk = 256): FloatArray {
    if (tokens.length === 0) throw new UserError('prompt is empty: give at least one token (e.g. BOS)');
    let logits: FloatArray | null = null;
    for (let i = 0; i < tokens.length; i += chunk) {
      const part = Array.prototype.slice.call(tokens, i, Math.min(tokens.length, i + chunk)) as number[];
      logits = this.step([{ cache, tokens: part }], 'last')[0];
    }
    return logits as FloatArray;
  }

  /** Logits after every position of a sequence (teacher forcing), [n, V], computed with a fresh cache in chunks. */
  logitsAll(tokens: ArrayLike<number>, chunk = 128): FloatArray {
    const V = this.model.config.vocabSize;
    const out = this.backend.alloc(tokens.length * V);
    const cache = this.newCache(Math.min(this.model.config.maxSeqLen, Math.max(1, tokens.length)));
    for (let i = 0; i < tokens.length; i += chunk) {
      const part = Array.prototype.slice.call(tokens, i, Math.min(tokens.length, i + chunk)) as number[];
      out.set(this.step([{ cache, tokens: part }], 'all')[0], i * V);
    }
    return out;
  }
}

// ------------------------------------------------------------------ generation

export interface GenerateOptions extends SamplingOptions {
  /** Maximum number of new tokens per sequence. */
  maxTokens: number;
  /** Sequence i samples with seed + i. */
  seed: number;
  /** >1 discourages tokens already in the context (CTRL / llama.cpp rule); 1 = off. */
  repetitionPenalty?: number;
  /** Only the last N context tokens are penalised (0 = the whole context). */
  repetitionWindow?: number;
  /** Token ids that end a sequence (not emitted). Defaults to the tokenizer's EOS when a tokenizer is given. */
  stopTokens?: number[];
  /** Strings that end a sequence; the text is cut before the stop string. Needs a tokenizer. */
  stop?: string[];
  tokenizer?: Tokenizer;
  /**
   * What to do when prompt + maxTokens exceeds the context: 'error' (default), 'stop' (end with reason 'length'),
   * or 'shift' (when the cache is full, it restarts from the last half of the context, re-prefilled, and
   * generation goes on: every token still sees at least half a context of history).
   */
  onContextFull?: ContextFull;
}

export type FinishReason = 'eos' | 'stop' | 'max_tokens' | 'length';
export type ContextFull = 'error' | 'stop' | 'shift';

export interface TokenEvent {
  /** Index of the prompt in the batch. */
  seq: number;
  /** The new token id. */
  id: number;
  /** Newly complete text (empty while a multi-byte character or a possible stop string is pending). */
  text: string;
  /** Set on the sequence's last event. */
  done?: FinishReason;
}

export interface GenerationResult {
  tokens: number[];
  text: string;
  finish: FinishReason;
  promptTokens: number;
}

export interface GenerationStats {
  prefillTokens: number;
  prefillSeconds: number;
  decodeTokens: number;
  decodeSeconds: number;
}

interface SeqState {
  cache: KVCache;
  rng: Rng;
  context: number[];
  generated: number[];
  emitted: number; // chars of text already emitted
  text: DecodeStream | null; // the generated text, decoded a token at a time (null without a tokenizer)
  done: FinishReason | null;
  next: number; // token to feed next step
}

/** Longest suffix of text that is a proper prefix of one of the stop strings. */
export function pendingStopOverlap(text: string, stops: string[]): number {
  let best = 0;
  for (const s of stops) {
    for (let k = Math.min(s.length - 1, text.length); k > best; k--) {
      if (text.endsWith(s.slice(0, k))) {
        best = k;
        break;
      }
    }
  }
  return best;
}

function validateOptions(o: GenerateOptions): void {
  if (!Number.isInteger(o.maxTokens) || o.maxTokens < 0) throw new UserError(`maxTokens must be a non-negative integer, got ${o.maxTokens}`);
  if (!(o.temperature >= 0)) throw new UserError(`temperature must be >= 0, got ${o.temperature}`);
  if (!(o.topP > 0 && o.topP <= 1)) throw new UserError(`top-p must be in (0, 1], got ${o.topP}`);
  if (!Number.isInteger(o.topK) || o.topK < 0) throw new UserError(`top-k must be a non-negative integer, got ${o.topK}`);
  if (o.repetitionPenalty !== undefined && !(o.repetitionPenalty > 0)) throw new UserError(`repetition penalty must be > 0, got ${o.repetitionPenalty}`);
  if (o.stop?.length && !o.tokenizer) throw new UserError('stop strings need a tokenizer');
}

/**
 * Streams tokens for a batch of prompts. All live sequences advance together: one batched decode step per token
 * (the matmuls see one row per sequence). Each sequence ends on a stop token, a stop string, maxTokens or the context.
 */
export async function* generateStream(
  decoder: Decoder, prompts: number[][], o: GenerateOptions, stats?: GenerationStats,
): AsyncGenerator<TokenEvent, GenerationResult[], void> {
  validateOptions(o);
  const c = decoder.config;
  const tok = o.tokenizer;
  const stopTokens = new Set(o.stopTokens ?? (tok ? [tok.eosId] : []));
  const stops = (o.stop ?? []).filter((s) => s.length > 0);
  const states: SeqState[] = [];
  const results: GenerationResult[] = [];
  const onFull = o.onContextFull ?? 'error';
  for (const [i, prompt] of prompts.entries()) {
    if (prompt.length === 0) throw new UserError(`prompt ${i + 1} is empty: give at least one token (e.g. BOS)`);
    if (prompt.length > c.maxSeqLen) throw new UserError(`prompt ${prompts.length > 1 ? `${i + 1} ` : ''}is ${prompt.length} tokens; the model's context is ${c.maxSeqLen}`);
    if (onFull === 'error' && prompt.length + o.maxTokens > c.maxSeqLen) {
      throw new UserError(`prompt (${prompt.length} tokens) + ${o.maxTokens} new tokens exceeds the model's context of ${c.maxSeqLen}; lower --max-tokens or shorten the prompt`);
    }
  }
  // Prefill, one prompt at a time (they differ in length).
  const t0 = performance.now();
  for (const [i, prompt] of prompts.entries()) {
    // size the cache for what this sequence can reach, not the whole context
    const cache = decoder.newCache(Math.min(c.maxSeqLen, prompt.length + o.maxTokens));
    const logits = decoder.prefill(cache, prompt);
    const st: SeqState = { cache, rng: new Rng(o.seed + i), context: prompt.slice(), generated: [], emitted: 0, text: tok ? new DecodeStream(tok) : null, done: null, next: -1 };
    states.push(st);
    results.push({ tokens: st.generated, text: '', finish: 'max_tokens', promptTokens: prompt.length });
    if (o.maxTokens === 0) st.done = 'max_tokens';
    else st.next = pick(st, logits);
    if (stats) stats.prefillTokens += prompt.length;
  }
  const t1 = performance.now();
  if (stats) stats.prefillSeconds += (t1 - t0) / 1000;
  let lastTurn = t1;

  function pick(st: SeqState, logits: FloatArray): number {
    if (o.repetitionPenalty !== undefined && o.repetitionPenalty !== 1) {
      const win = o.repetitionWindow ?? 0;
      applyRepetitionPenalty(logits, win > 0 ? st.context.slice(-win) : st.context, o.repetitionPenalty);
    }
    return sampleToken(logits, o, st.rng, decoder.backend);
  }

  /** Restarts a full cache from the last half of the context (the fed tokens; st.next is fed by the next step). */
  function shift(st: SeqState): void {
    const keep = st.context.slice(-Math.max(1, Math.floor(st.cache.maxSeq / 2)) - 1, -1);
    st.cache.reset();
    decoder.prefill(st.cache, keep);
  }

  /** Accepts st.next: records it, checks the stop conditions, returns the event to emit. */
  function accept(i: number, st: SeqState): TokenEvent {
    const id = st.next;
    const ev: TokenEvent = { seq: i, id, text: '' };
    if (stopTokens.has(id)) {
      st.done = 'eos';
    } else {
      st.generated.push(id);
      st.context.push(id);
      if (st.text) {
        let text = st.text.push(id);
        let cut = -1;
        for (const s of stops) {
          const at = text.indexOf(s, Math.max(0, st.emitted - s.length));
          if (at >= 0 && (cut < 0 || at < cut)) cut = at;
        }
        if (cut >= 0) {
          st.done = 'stop';
          text = text.slice(0, cut);
        }
        // hold back an incomplete UTF-8 character and a possible start of a stop string
        let safe = text.length;
        if (!st.done) {
          if (text.endsWith('\ufffd')) safe = text.length - 1;
          safe = Math.min(safe, text.length - pendingStopOverlap(text, stops));
        }
        if (safe > st.emitted) {
          ev.text = text.slice(st.emitted, safe);
          st.emitted = safe;
        }
        if (st.done) results[i].text = text;
      }
      if (!st.done && st.generated.length >= o.maxTokens) st.done = 'max_tokens';
      if (!st.done && onFull !== 'shift' && st.context.length >= c.maxSeqLen) st.done = 'length';
    }
    if (st.done) {
      if (st.text && st.done !== 'stop') {
        // flush what was held back
        const text = st.text.text;
        if (text.length > st.emitted) {
          ev.text += text.slice(st.emitted);
          st.emitted = text.length;
        }
        results[i].text = text;
      }
      results[i].finish = st.done;
      ev.done = st.done;
    }
    return ev;
  }

  for (;;) {
    const live = states.map((st, i) => [st, i] as const).filter(([st]) => !st.done);
    if (live.length === 0) break;
    const events = live.map(([st, i]) => accept(i, st));
    for (const ev of events) yield ev;
    const still = live.filter(([st]) => !st.done);
    if (still.length === 0) break;
    if (onFull === 'shift') for (const [st] of still) if (st.cache.length >= st.cache.maxSeq) shift(st);
    const t2 = performance.now();
    const logits = decoder.step(still.map(([st]) => ({ cache: st.cache, tokens: [st.next] })), 'last', true);
    still.forEach(([st], k) => {
      st.next = pick(st, logits[k]);
    });
    const t3 = performance.now();
    if (stats) {
      stats.decodeSeconds += (t3 - t2) / 1000;
      stats.decodeTokens += still.length;
    }
    if (t3 - lastTurn >= TURN_MS) {
      await new Promise<void>((r) => nextTurn(r)); // let I/O (streaming output, timers, signals) through
      lastTurn = performance.now();
    }
  }
  return results;
}

/** Runs generateStream to the end and returns every sequence's result. */
export async function generate(decoder: Decoder, prompts: number[][], o: GenerateOptions, stats?: GenerationStats): Promise<GenerationResult[]> {
  const it = generateStream(decoder, prompts, o, stats);
  for (;;) {
    const r = await it.next();
    if (r.done) return r.value;
  }
}

/** Library convenience: an async iterator over the tokens of one prompt. */
export async function* tokens(decoder: Decoder, prompt: number[], o: GenerateOptions): AsyncGenerator<TokenEvent, GenerationResult, void> {
  const results = yield* generateStream(decoder, [prompt], o);
  return results[0];
}

export function emptyStats(): GenerationStats {
  return { prefillTokens: 0, prefillSeconds: 0, decodeTokens: 0, decodeSeconds: 0 };
}

/**
 * generateStream gives the event loop a turn once this many milliseconds of decoding have passed, not after every
 * step: a turn costs ~50 µs right after a step (its code and data are no longer in cache once the weights have streamed
 * through), ~4% of a 240-token generation of mini-15m when taken every token.
 */
const TURN_MS = 10;

/** The next turn of the event loop: setImmediate in Node, a zero timeout in a browser (the page's worker). */
const nextTurn: (f: () => void) => void = typeof setImmediate === 'function' ? (f) => setImmediate(f) : (f) => setTimeout(f, 0);
