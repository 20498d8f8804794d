/**
 * Tokenizer vocabularies as the interchange formats store them (GGUF `tokenizer.ggml.*`, llama2.c `tokenizer.bin`):
 * a piece string, a score and a SentencePiece token type per id, plus the special ids. Pieces use SentencePiece's
 * conventions: '▁' (U+2581) for a space, `<0xAB>` for byte-fallback pieces.
 *
 * Any tokenizer that can list its pieces feeds the exporters through `vocabFromTokenizer`: the byte tokenizer
 * directly, or any object with `pieces`, `scores` and `types` arrays (a SentencePiece model).
 * `tokenizerFromVocab` goes the other way: the byte tokenizer when the vocabulary is exactly ours, otherwise a
 * score-driven BPE (SentencePiece/llama2.c style) over the pieces with byte fallback.
 * Node-free (the page samples from a GGUF file's vocabulary with it): a SentencePiece model is recognised by its
 * `proto`, not by importing the codec (tokenizer/model.ts reads and writes files).
 */
import type { ModelProto } from './model-proto.js';
import { ByteTokenizer, BYTE_OFFSET } from './bytes.js';
import type { Tokenizer } from './types.js';
import { UserError } from '../util/errors.js';

export interface TokenizerVocab {
  pieces: string[];
  scores: number[];
  types: number[];
  bos: number;
  eos: number;
  unk: number;
  /**
   * Piece i without building `pieces`: a vocabulary read lazily (llama2.c's tokenizer.bin) has it, with one piece
   * per type by construction; its `pieces` are made on first use.
   */
  piece?(i: number): string;
}

/** Piece i of a vocabulary (one string, not the whole list when the vocabulary is read lazily). */
export function pieceOf(v: TokenizerVocab, i: number): string {
  return v.piece ? v.piece(i) : v.pieces[i];
}

/** How many pieces a vocabulary has (without building a lazy vocabulary's `pieces`). */
export function vocabLength(v: TokenizerVocab): number {
  return v.piece ? v.types.length : v.pieces.length;
}

/** SentencePiece / GGUF token types. */
export const TokenType = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

export const SPACE = '\u2581';

function hex2(b: number): string {
  return b.toString(16).toUpperCase().padStart(2, '0');
}

/** Our byte tokenizer's vocabulary: <unk>, <s>, </s>, <0x00>..<0xFF>, then unused padding up to vocabSize. */
export function byteVocab(vocabSize = 256 + BYTE_OFFSET): TokenizerVocab {
  const pieces = ['<unk>', '<s>', '</s>'];
  const types: number[] = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL];
  for (let b = 0; b < 256; b++) {
    pieces.push(`<0x${hex2(b)}>`);
    types.push(TokenType.BYTE);
  }
  return padVocab({ pieces, scores: pieces.map(() => 0), types, bos: 1, eos: 2, unk: 0 }, vocabSize);
}

/** Pads a vocabulary with unused pieces up to the model's vocabulary size (formats require one piece per row). */
export function padVocab(v: TokenizerVocab, vocabSize: number): TokenizerVocab {
  if (v.pieces.length > vocabSize) throw new UserError(`tokenizer has ${v.pieces.length} pieces but the model's vocabulary is ${vocabSize}`);
  const out = { ...v, pieces: v.pieces.slice(), scores: v.scores.slice(), types: v.types.slice() };
  for (let i = v.pieces.length; i < vocabSize; i++) {
    out.pieces.push(`<unused${i}>`);
    out.scores.push(0);
    out.types.push(TokenType.UNUSED);
  }
  return out;
}

export function isByteVocab(v: TokenizerVocab): boolean {
  const n = vocabLength(v);
  if (n < 259 || pieceOf(v, 0) !== '<unk>' || pieceOf(v, 1) !== '<s>' || pieceOf(v, 2) !== '</s>') return false;
  if (v.bos !== 1 || v.eos !== 2) return false;
  for (let b = 0; b < 256; b++) if (pieceOf(v, BYTE_OFFSET + b) !== `<0x${hex2(b)}>`) return false;
  for (let i = 259; i < n; i++) if (v.types[i] !== TokenType.UNUSED) return false;
  return true;
}

export function validateVocab(v: TokenizerVocab, what: string): void {
  const n = vocabLength(v);
  if (v.scores.length !== n || v.types.length !== n) throw new UserError(`${what}: ${n} pieces but ${v.scores.length} scores and ${v.types.length} types`);
  for (const [k, id] of [['bos', v.bos], ['eos', v.eos], ['unk', v.unk]] as const) {
    if (!Number.isInteger(id) || id < -1 || id >= n) throw new UserError(`${what}: ${k} id ${id} is outside the vocabulary of ${n}`);
  }
}

interface PieceSource {
  pieces: string[];
  scores: number[];
  types: number[];
  bosId?: number;
  eosId?: number;
  unkId?: number;
}

/** The vocabulary of a tokenizer, padded to vocabSize; null when the tokenizer cannot list its pieces. */
export function vocabFromTokenizer(t: Tokenizer, vocabSize: number): TokenizerVocab | null {
  if (t instanceof ByteTokenizer) return byteVocab(vocabSize);
  if (t instanceof VocabTokenizer) return padVocab(t.vocab, vocabSize);
  const sp = t as Partial<{ proto: ModelProto; unkId: number }>;
  if (Array.isArray(sp.proto?.pieces) && typeof sp.unkId === 'number') {
    // a SentencePieceModel (tokenizer/model.ts)
    const ps = sp.proto.pieces;
    return padVocab({ pieces: ps.map((p) => p.piece), scores: ps.map((p) => p.score), types: ps.map((p) => p.type), bos: t.bosId, eos: t.eosId, unk: sp.unkId }, vocabSize);
  }
  const s = t as unknown as Partial<PieceSource>;
  if (Array.isArray(s.pieces) && Array.isArray(s.scores) && Array.isArray(s.types)) {
    return padVocab({ pieces: s.pieces, scores: s.scores, types: s.types, bos: t.bosId, eos: t.eosId, unk: s.unkId ?? 0 }, vocabSize);
  }
  return null;
}

export function tokenizerFromVocab(v: TokenizerVocab): Tokenizer {
  if (isByteVocab(v)) return new ByteTokenizer();
  return new VocabTokenizer(v);
}

/**
 * SentencePiece-style BPE from scores (llama2.c's `encode`): a dummy-prefix space, spaces as '▁', one piece per
 * character (bytes for characters without a piece), then repeatedly merge the adjacent pair whose concatenation
 * is the highest-scoring piece.
 */
export class VocabTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  /** Piece → id and byte → id, built by the first encode (decoding, e.g. a generation from BOS, needs neither). */
  private ids = new Map<string, number>();
  private byteIds = new Int32Array(256).fill(-1);
  private indexed = false;
  private enc = new TextEncoder();

  constructor(readonly vocab: TokenizerVocab, readonly addDummyPrefix = true) {
    validateVocab(vocab, 'tokenizer');
    this.vocabSize = vocabLength(vocab);
    this.bosId = vocab.bos;
    this.eosId = vocab.eos;
  }

  private index(): void {
    if (this.indexed) return;
    this.indexed = true;
    const vocab = this.vocab;
    const { pieces, types } = vocab;
    for (let i = 0; i < pieces.length; i++) {
      const p = pieces[i];
      const t = types[i];
      const m = t === TokenType.BYTE ? /^<0x([0-9A-Fa-f]{2})>$/.exec(p) : null;
      if (m) this.byteIds[parseInt(m[1], 16)] = i;
      else if (t === TokenType.NORMAL || t === TokenType.USER_DEFINED || t === undefined) {
        if (!this.ids.has(p)) this.ids.set(p, i);
      }
    }
  }

  encode(text: string): number[] {
    if (text.length === 0) return [];
    this.index();
    const norm = ((this.addDummyPrefix ? ' ' : '') + text).replace(/ /g, SPACE);
    const toks: number[] = [];
    for (const ch of norm) {
      const id = this.ids.get(ch);
      if (id !== undefined) {
        toks.push(id);
        continue;
      }
      for (const b of this.enc.encode(ch)) toks.push(this.byteIds[b] >= 0 ? this.byteIds[b] : this.vocab.unk);
    }
    const P = this.vocab.pieces;
    for (;;) {
      let best = -Infinity;
      let at = -1;
      let bestId = -1;
      for (let i = 0; i + 1 < toks.length; i++) {
        const id = this.ids.get(P[toks[i]] + P[toks[i + 1]]);
        if (id !== undefined && this.vocab.scores[id] > best) {
          best = this.vocab.scores[id];
          at = i;
          bestId = id;
        }
      }
      if (at < 0) break;
      toks.splice(at, 2, bestId);
    }
    return toks;
  }

  /** Each piece's bytes, built on first use (the generation loop decodes the growing output after every token). */
  private pieceBytes: (Uint8Array | undefined)[] = [];
  private utf8 = new TextDecoder('utf-8', { fatal: false });

  private bytesOf(id: number): Uint8Array {
    let b = this.pieceBytes[id];
    if (b) return b;
    const t = this.vocab.types[id];
    const p = pieceOf(this.vocab, id);
    b = new Uint8Array(0);
    if (t === TokenType.BYTE) {
      const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(p);
      if (m) b = Uint8Array.of(parseInt(m[1], 16));
    } else if (t === TokenType.NORMAL || t === TokenType.USER_DEFINED) {
      b = this.enc.encode(p.replace(/\u2581/g, ' '));
    }
    this.pieceBytes[id] = b;
    return b;
  }

  decode(ids: ArrayLike<number>): string {
    let n = 0;
    for (let i = 0; i < ids.length; i++) if (ids[i] >= 0 && ids[i] < this.vocabSize) n += this.bytesOf(ids[i]).length;
    const bytes = new Uint8Array(n);
    n = 0;
    for (let i = 0; i < ids.length; i++) {
      if (!(ids[i] >= 0 && ids[i] < this.vocabSize)) continue;
      const b = this.bytesOf(ids[i]);
      bytes.set(b, n);
      n += b.length;
    }
    return this.utf8.decode(bytes);
  }
}

/**
 * Stands in when a model file carries no vocabulary llama-ts can use (a Hugging Face directory without
 * llama-ts-vocab.json, a llama2.c model without tokenizer.bin, a GGUF with a non-SentencePiece tokenizer):
 * encoding is refused with a clear message (token ids still work), decoding shows the ids.
 */
export class MissingTokenizer implements Tokenizer {
  constructor(readonly vocabSize: number, readonly reason: string, readonly bosId = 1, readonly eosId = 2) {}
  encode(): number[] {
    throw new UserError(`${this.reason}: cannot tokenize text; pass token ids instead (--ids)`);
  }
  decode(ids: ArrayLike<number>): string {
    return Array.from(ids, (i) => `<${i}>`).join('');
  }
}
