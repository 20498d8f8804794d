/**
 * Continuous batching over the KV-cache decoder: sequences from any number of requests share one batched
 * `Decoder.step` per iteration, and join or leave the batch between steps.
 *
 * The engine owns `slots` KV caches (one per sequence being decoded) and a bounded FIFO of sequences waiting for
 * one. Each iteration: drop cancelled sequences (their slot is free again), move waiting sequences into free
 * slots, then run one step whose items are every decoding sequence's next token plus prompt chunks of sequences
 * still prefilling (at most `prefillChunk` prompt tokens per step in all, so a long prompt delays the running
 * streams by bounded steps), sample each finished row and emit its text. Between steps the event loop runs (new
 * requests, disconnects, writes).
 *
 * Per sequence the order of work is `generateStream`'s (prefill → sample → accept → step(next) → sample → …) with
 * the same sampler, stop rules and text holdback, so a request equals `generate` with the same seed (bit for bit
 * on the ref backend; the native SGEMM may round a batch of rows differently from one row, as any batching server).
 */
import type { FloatArray } from '../kernels/backend.js';
import type { Decoder, FinishReason, KVCache } from '../inference/generate.js';
import { pendingStopOverlap } from '../inference/generate.js';
import { applyRepetitionPenalty, sampleToken, type SamplingOptions } from '../inference/sampler.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { DecodeStream } from '../tokenizer/stream.js';
import { Rng } from '../util/rng.js';

/** Context tokens the repetition penalty looks at (the CLI's --repeat-last-n default). */
export const REPETITION_WINDOW = 64;

export interface SequenceSpec extends SamplingOptions {
  prompt: number[];
  /** Already capped so that prompt + maxTokens fits the context. */
  maxTokens: number;
  seed: number;
  repetitionPenalty: number;
  stopTokens: number[];
  stop: string[];
}

export interface SequenceEvent {
  /** Newly complete text (may be empty). */
  text: string;
  /** Set on the last event: why the sequence ended, or 'cancelled' / 'error' when it was stopped from outside. */
  done?: FinishReason | 'cancelled' | 'error';
  /** Tokens generated so far. */
  completionTokens: number;
}

/** A submitted sequence: cancel() frees its slot (or its place in the queue) before the next step. */
export interface SequenceHandle {
  cancel(): void;
  readonly finished: boolean;
}

export class QueueFullError extends Error {}

interface Sequence {
  spec: SequenceSpec;
  onEvent: (ev: SequenceEvent) => void;
  rng: Rng;
  context: number[];
  generated: number[];
  /** Prompt tokens already in the cache. */
  fed: number;
  /** Chars of text already emitted. */
  emitted: number;
  /** The generated text, decoded a token at a time. */
  text: DecodeStream;
  /** The accepted token to feed next (decoding), or -1 (prefilling). */
  next: number;
  /** Ended (by its stop rules, an error or cancel()): its slot is freed before the next step. */
  finished: boolean;
  slot: number;
}

export interface EngineOptions {
  /** Sequences decoded together (KV caches). */
  slots: number;
  /** Sequences that may wait for a slot; more are refused (QueueFullError). */
  queue: number;
  /** Prompt tokens prefilled per step, over all prefilling sequences. */
  prefillChunk?: number;
}

export interface EngineStats {
  slots: number;
  busy: number;
  waiting: number;
  queueLimit: number;
  steps: number;
  decodedTokens: number;
  /** Sequences that ended by their own stop rules, and sequences cancelled (client gone, shutdown). */
  completed: number;
  cancelled: number;
}

export class BatchEngine {
  readonly slots: number;
  readonly queueLimit: number;
  readonly prefillChunk: number;
  private readonly caches: (KVCache | null)[];
  private readonly active: (Sequence | null)[];
  private readonly waiting: Sequence[] = [];
  private running = false;
  private idleWaiters: (() => void)[] = [];
  private steps = 0;
  private decodedTokens = 0;
  private completed = 0;
  private cancelled = 0;

  constructor(readonly decoder: Decoder, readonly tokenizer: Tokenizer, o: EngineOptions) {
    if (!(Number.isInteger(o.slots) && o.slots >= 1)) throw new RangeError(`slots must be a positive integer, got ${o.slots}`);
    if (!(Number.isInteger(o.queue) && o.queue >= 0)) throw new RangeError(`queue must be a non-negative integer, got ${o.queue}`);
    this.slots = o.slots;
    this.queueLimit = o.queue;
    this.prefillChunk = o.prefillChunk ?? 128;
    this.caches = new Array(o.slots).fill(null);
    this.active = new Array(o.slots).fill(null);
  }

  stats(): EngineStats {
    return {
      slots: this.slots, busy: this.active.filter((s) => s && !s.finished).length, waiting: this.waiting.length, queueLimit: this.queueLimit,
      steps: this.steps, decodedTokens: this.decodedTokens, completed: this.completed, cancelled: this.cancelled,
    };
  }

  /** Room for `n` more sequences: free slots plus free places in the queue. */
  canAccept(n: number): boolean {
    const free = this.active.filter((s) => s === null || s.finished).length;
    return n <= free + this.queueLimit - this.waiting.length;
  }

  /**
   * Queues sequences (all or none: QueueFullError when they do not fit). Events arrive through onEvent, the last
   * one with `done` set; a cancelled sequence gets no further events.
   */
  submit(specs: SequenceSpec[], onEvent: (index: number, ev: SequenceEvent) => void): SequenceHandle[] {
    if (!this.canAccept(specs.length)) throw new QueueFullError(`the queue is full (${this.waiting.length} waiting for ${this.slots} slots)`);
    const seqs = specs.map((spec, i): Sequence => ({
      spec, onEvent: (ev) => onEvent(i, ev), rng: new Rng(spec.seed), context: spec.prompt.slice(), generated: [], fed: 0, emitted: 0, text: new DecodeStream(this.tokenizer), next: -1,
      finished: false, slot: -1,
    }));
    for (const s of seqs) {
      if (s.spec.maxTokens === 0) this.finish(s, 'max_tokens', '');
      else this.waiting.push(s);
    }
    this.kick();
    return seqs.map((s) => ({
      cancel: () => {
        if (s.finished) return;
        s.finished = true;
        this.cancelled++;
        const w = this.waiting.indexOf(s);
        if (w >= 0) this.waiting.splice(w, 1);
        this.kick(); // the loop frees the slot before its next step
      },
      get finished() {
        return s.finished;
      },
    }));
  }

  /** Resolves once nothing is decoding or waiting. */
  idle(): Promise<void> {
    if (!this.running && this.waiting.length === 0 && this.active.every((s) => s === null)) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /** Ends every waiting and running sequence with done = 'cancelled' (shutdown). */
  cancelAll(): void {
    for (const s of [...this.waiting, ...this.active]) {
      if (s && !s.finished) {
        s.finished = true;
        this.cancelled++;
        s.onEvent({ text: '', done: 'cancelled', completionTokens: s.generated.length });
      }
    }
    this.waiting.length = 0;
    this.kick();
  }

  private kick(): void {
    if (this.running) return;
    this.running = true;
    setImmediate(() => void this.loop());
  }

  private async loop(): Promise<void> {
    try {
      for (;;) {
        this.release();
        this.admit();
        if (this.active.every((s) => s === null)) break;
        try {
          this.iterate();
        } catch (e) {
          // a bug or a resource failure in one step must not take the server down: end what was running, go on
          process.stderr.write(`llama-ts serve: decode step failed: ${(e as Error).message}\n`);
          for (const s of this.active) if (s) this.finish(s, 'error', '');
        }
        await new Promise<void>((r) => setImmediate(r)); // I/O: new requests, disconnects, writes
      }
    } finally {
      this.running = false;
      if (this.waiting.length > 0) this.kick();
      else for (const r of this.idleWaiters.splice(0)) r();
    }
  }

  /** Frees the slots of finished and cancelled sequences. */
  private release(): void {
    this.active.forEach((s, k) => {
      if (s && s.finished) {
        this.active[k] = null;
        this.caches[k]?.reset();
      }
    });
  }

  private admit(): void {
    for (let k = 0; k < this.slots && this.waiting.length > 0; k++) {
      if (this.active[k] !== null) continue;
      const s = this.waiting.shift() as Sequence;
      s.slot = k;
      this.caches[k] ??= this.decoder.newCache();
      this.caches[k]!.reset();
      this.active[k] = s;
    }
  }

  /** One batched step over every active sequence (decode rows first, then prompt chunks within the budget). */
  private iterate(): void {
    const items: { seq: Sequence; tokens: number[] }[] = [];
    for (const s of this.active) if (s && s.next >= 0) items.push({ seq: s, tokens: [s.next] });
    let budget = this.prefillChunk;
    for (const s of this.active) {
      if (!s || s.next >= 0 || budget <= 0) continue;
      const take = Math.min(budget, s.spec.prompt.length - s.fed);
      items.push({ seq: s, tokens: s.spec.prompt.slice(s.fed, s.fed + take) });
      budget -= take;
    }
    const logits = this.decoder.step(items.map((it) => ({ cache: this.caches[it.seq.slot]!, tokens: it.tokens })), 'last', true);
    this.steps++;
    items.forEach((it, k) => {
      const s = it.seq;
      if (s.next < 0) {
        s.fed += it.tokens.length;
        if (s.fed < s.spec.prompt.length) return; // more prompt to prefill
      } else {
        this.decodedTokens++;
      }
      s.next = this.pick(s, logits[k]);
      this.accept(s);
    });
  }

  private pick(s: Sequence, logits: FloatArray): number {
    const o = s.spec;
    if (o.repetitionPenalty !== 1) applyRepetitionPenalty(logits, s.context.slice(-REPETITION_WINDOW), o.repetitionPenalty);
    return sampleToken(logits, o, s.rng, this.decoder.backend);
  }

  /** generateStream's accept: records s.next, applies the stop rules, emits the newly complete text. */
  private accept(s: Sequence): void {
    const o = s.spec;
    const id = s.next;
    if (o.stopTokens.includes(id)) return this.finish(s, 'eos', this.flush(s));
    s.generated.push(id);
    s.context.push(id);
    let text = s.text.push(id);
    let cut = -1;
    for (const st of o.stop) {
      const at = text.indexOf(st, Math.max(0, s.emitted - st.length));
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      text = text.slice(0, cut);
      const out = text.length > s.emitted ? text.slice(s.emitted) : '';
      return this.finish(s, 'stop', out);
    }
    if (s.generated.length >= o.maxTokens) return this.finish(s, 'max_tokens', this.flush(s));
    if (s.context.length >= this.decoder.config.maxSeqLen) return this.finish(s, 'length', this.flush(s));
    // hold back an incomplete UTF-8 character and a possible start of a stop string
    let safe = text.length;
    if (text.endsWith('\ufffd')) safe = text.length - 1;
    safe = Math.min(safe, text.length - pendingStopOverlap(text, o.stop));
    let out = '';
    if (safe > s.emitted) {
      out = text.slice(s.emitted, safe);
      s.emitted = safe;
    }
    s.onEvent({ text: out, completionTokens: s.generated.length }); // every token, even one whose text is held back
  }

  /** The text held back so far. */
  private flush(s: Sequence): string {
    const text = s.text.text;
    return text.length > s.emitted ? text.slice(s.emitted) : '';
  }

  private finish(s: Sequence, why: FinishReason | 'error', text: string): void {
    if (s.finished) return;
    s.finished = true;
    this.completed++;
    s.onEvent({ text, done: why, completionTokens: s.generated.length });
  }
}
