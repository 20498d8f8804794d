/**
 * SentencePieceModel: loads a BPE `.model` and encodes/decodes exactly like SentencePiece
 * (bpe_model.cc + sentencepiece_processor.cc): normalize, split into characters (user-defined
 * symbols whole and frozen), merge the adjacent pair whose piece has the highest score (ties:
 * leftmost) until none is a piece, map leftovers to <unk> or to <0xNN> byte pieces.
 *
 * Speed: the normalized text is cut into "words" before every U+2581 that follows another
 * character whenever no piece can span such a cut (checked at load), and words are cached.
 *
 * Long inputs: BPE runs on at most MAX_SPAN characters at a time, so time is linear in the input and the working
 * memory (symbols, merge heap) is bounded whatever the length. A word longer than MAX_SPAN (no whitespace for 8K
 * characters: base64, minified code, a DNA string) is encoded as consecutive MAX_SPAN slices; for a model whose
 * pieces may span whitespace, the text is cut at the last whitespace before MAX_SPAN (or at MAX_SPAN). This is the
 * one place where the ids can differ from SentencePiece's, and only within a piece's length of a cut: SentencePiece
 * itself never trains on such spans (max_sentence_length, 4192 bytes by default) and so has no merges to span them.
 */
import { siftUp, popTop } from './heap.js';
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../util/fsutil.js';
import { UserError } from '../util/errors.js';
import { parseModelProto, serializeModelProto, PieceType, ModelType, TRAINER_DEFAULTS, type ModelProto } from './model-proto.js';
import { Normalizer, WS } from './normalizer.js';
import { decodeUtf8Spm } from './utf8.js';

export interface EncodeOptions {
  /** Prepend the BOS id (default false, like spm_encode). */
  bos?: boolean;
  /** Append the EOS id (default false). */
  eos?: boolean;
}

const enc = new TextEncoder();
const CACHE_MAX = 1 << 17;
const CACHE_WORD_MAX = 64;
/** Longest span BPE runs on at once (see the file comment). */
export const MAX_SPAN = 1 << 13;

/** End of the slice of at most MAX_SPAN characters starting at s, never between the halves of a surrogate pair. */
function sliceEnd(t: string, s: number): number {
  let e = Math.min(t.length, s + MAX_SPAN);
  if (e < t.length) {
    const c = t.charCodeAt(e);
    if (c >= 0xdc00 && c <= 0xdfff) e--;
  }
  return e;
}

function byteOfPiece(p: string): number {
  const m = /^<0x([0-9A-F]{2})>$/.exec(p);
  return m ? parseInt(m[1], 16) : -1;
}

export class SentencePieceModel {
  readonly proto: ModelProto;
  readonly normalizer: Normalizer;
  /** Piece string -> id for NORMAL, USER_DEFINED and UNUSED pieces (what BPE may produce). */
  private pieceIds = new Map<string, number>();
  /** Piece string -> id for all pieces (first one wins for duplicates across kinds). */
  private allIds = new Map<string, number>();
  private scores: Float32Array;
  private types: Uint8Array;
  private byteIds: Int32Array | null = null;
  private userDefined: string[] = [];
  private userDefinedFirst = new Set<number>();
  private cache = new Map<string, Int32Array>();
  private chunkable: boolean;
  readonly unkId: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  readonly byteFallback: boolean;
  private unkSurface: string;
  private merges: Map<number, number> | null = null;
  private charIds = new Int32Array(0x10000).fill(-2);
  private scratch = { start: new Int32Array(0), end: new Int32Array(0), prev: new Int32Array(0), next: new Int32Array(0), freeze: new Uint8Array(0), sym: new Int32Array(0) };
  private heap = { score: new Float64Array(256), left: new Int32Array(256), size: new Int32Array(256), id: new Int32Array(256) };

  private growScratch(n: number): void {
    const c = Math.max(n, 2 * this.scratch.start.length, 256);
    this.scratch = { start: new Int32Array(c), end: new Int32Array(c), prev: new Int32Array(c), next: new Int32Array(c), freeze: new Uint8Array(c), sym: new Int32Array(c) };
  }

  constructor(proto: ModelProto) {
    this.proto = proto;
    const ts = proto.trainerSpec ?? {};
    const type = ts.modelType ?? TRAINER_DEFAULTS.modelType;
    if (type !== ModelType.BPE) {
      const name = ModelType[type] ?? `type ${type}`;
      throw new UserError(`.model file: ${name.toLowerCase()} models are not supported (only BPE)`);
    }
    const n = proto.pieces.length;
    if (n === 0) throw new UserError('.model file: no pieces');
    this.scores = new Float32Array(n);
    this.types = new Uint8Array(n);
    this.byteFallback = ts.byteFallback ?? false;
    let unk = -1;
    const bytes = new Int32Array(256).fill(-1);
    for (let i = 0; i < n; i++) {
      const p = proto.pieces[i];
      if (!p.piece) throw new UserError(`.model file: piece ${i} is empty`);
      if (!(p.type >= 1 && p.type <= 6)) throw new UserError(`.model file: piece ${i} has unknown type ${p.type}`);
      this.scores[i] = p.score;
      this.types[i] = p.type;
      const normal = p.type === PieceType.NORMAL || p.type === PieceType.USER_DEFINED || p.type === PieceType.UNUSED;
      if (normal) {
        if (this.pieceIds.has(p.piece)) throw new UserError(`.model file: piece '${p.piece}' is defined twice`);
        this.pieceIds.set(p.piece, i);
      }
      if (!this.allIds.has(p.piece)) this.allIds.set(p.piece, i);
      if (p.type === PieceType.USER_DEFINED) this.userDefined.push(p.piece);
      if (p.type === PieceType.UNKNOWN) {
        if (unk >= 0) throw new UserError('.model file: <unk> is defined twice');
        unk = i;
      }
      if (p.type === PieceType.BYTE) {
        if (!this.byteFallback) throw new UserError(`.model file: byte piece ${p.piece} found although byte_fallback is false`);
        const b = byteOfPiece(p.piece);
        if (b < 0) throw new UserError(`.model file: byte piece ${p.piece} is invalid`);
        bytes[b] = i;
      }
    }
    if (unk < 0) throw new UserError('.model file: <unk> is not defined');
    if (this.byteFallback) {
      if (bytes.includes(-1)) throw new UserError('.model file: byte_fallback is set but not all 256 byte pieces exist');
      this.byteIds = bytes;
    }
    this.unkId = unk;
    const id = (piece: string | undefined) => (piece !== undefined && this.allIds.has(piece) ? this.allIds.get(piece)! : -1);
    this.bosId = ts.bosId === -1 ? -1 : id(ts.bosPiece ?? TRAINER_DEFAULTS.bosPiece);
    this.eosId = ts.eosId === -1 ? -1 : id(ts.eosPiece ?? TRAINER_DEFAULTS.eosPiece);
    this.padId = (ts.padId ?? -1) === -1 ? -1 : id(ts.padPiece ?? TRAINER_DEFAULTS.padPiece);
    this.unkSurface = ts.unkSurface ?? TRAINER_DEFAULTS.unkSurface;
    this.userDefined.sort((a, b) => b.length - a.length);
    for (const u of this.userDefined) this.userDefinedFirst.add(u.codePointAt(0)!);
    this.normalizer = new Normalizer({
      spec: proto.normalizerSpec ?? {},
      treatWhitespaceAsSuffix: ts.treatWhitespaceAsSuffix ?? false,
      protectedStrings: this.userDefined,
    });
    // Words can be encoded independently when no piece can contain "x▁" (x != ▁).
    const crosses = /[^\u2581]\u2581/;
    this.chunkable = this.normalizer.escapeWhitespaces && ![...this.pieceIds.keys()].some((p) => crosses.test(p));
  }

  /** Reads a `.model` file. Throws UserError for missing, corrupt or unsupported files. */
  static load(path: string): SentencePieceModel {
    let buf: Uint8Array;
    try {
      buf = readFileSync(path);
    } catch (e) {
      throw new UserError(`cannot read model '${path}': ${(e as Error).message}`);
    }
    return SentencePieceModel.fromBytes(buf, path);
  }

  static fromBytes(buf: Uint8Array, what = '.model file'): SentencePieceModel {
    if (buf.length === 0) throw new UserError(`${what}: empty file`);
    return new SentencePieceModel(parseModelProto(buf, what));
  }

  /** Serialized ModelProto bytes. */
  toBytes(): Uint8Array {
    return serializeModelProto(this.proto);
  }

  save(path: string): void {
    writeFileAtomic(path, [this.toBytes()]);
  }

  get vocabSize(): number {
    return this.proto.pieces.length;
  }

  idToPiece(id: number): string {
    const p = this.proto.pieces[id];
    if (!p) throw new UserError(`id ${id} is out of range [0, ${this.vocabSize})`);
    return p.piece;
  }

  /** Id of a piece, or the <unk> id when it is not in the vocabulary (as SentencePiece). */
  pieceToId(piece: string): number {
    return this.allIds.get(piece) ?? this.unkId;
  }

  score(id: number): number {
    return this.scores[id];
  }

  pieceType(id: number): PieceType {
    return this.types[id] as PieceType;
  }

  isControl(id: number): boolean {
    return this.types[id] === PieceType.CONTROL;
  }

  /** Normalized form of text (with U+2581 for spaces), as SentencePiece feeds it to the model. */
  normalize(text: string | Uint8Array): string {
    return this.normalizer.normalize(text);
  }

  /**
   * Encodes text to ids. A Uint8Array is read as UTF-8 where each invalid byte stands for U+FFFD
   * (what SentencePiece does with raw bytes); strings with lone surrogates behave the same.
   */
  encode(text: string | Uint8Array, opts: EncodeOptions = {}): number[] {
    const norm = this.normalizer.normalize(text);
    const out: number[] = [];
    if (opts.bos) {
      if (this.bosId < 0) throw new UserError('this model has no BOS piece');
      out.push(this.bosId);
    }
    this.encodeNormalized(norm, out);
    if (opts.eos) {
      if (this.eosId < 0) throw new UserError('this model has no EOS piece');
      out.push(this.eosId);
    }
    return out;
  }

  /** Encodes text to pieces (unknown runs merged into one piece when there is no byte fallback). */
  encodeAsPieces(text: string | Uint8Array): string[] {
    const norm = this.normalizer.normalize(text);
    const out: string[] = [];
    let prevUnk = false;
    const res = this.bpe(norm, true);
    for (let k = 0; k < res.ids.length; k++) {
      const piece = res.pieces[k];
      const id = res.ids[k];
      if (id === this.unkId) {
        if (this.byteIds) {
          for (const b of enc.encode(piece)) out.push(this.proto.pieces[this.byteIds[b]].piece);
        } else if (prevUnk) out[out.length - 1] += piece;
        else out.push(piece);
        prevUnk = !this.byteIds;
      } else {
        out.push(piece);
        prevUnk = false;
      }
    }
    return out;
  }

  private encodeNormalized(norm: string, out: number[]): void {
    const start = out.length;
    if (!this.chunkable) {
      for (let s = 0; s < norm.length; ) {
        let e = sliceEnd(norm, s);
        if (e < norm.length) {
          const ws = norm.lastIndexOf('\u2581', e - 1);
          if (ws > s) e = ws;
        }
        this.emit(s === 0 && e === norm.length ? norm : norm.slice(s, e), out);
        s = e;
      }
    } else {
      let s = 0;
      for (let i = 1; i < norm.length; i++) {
        if (norm.charCodeAt(i) === 0x2581 && norm.charCodeAt(i - 1) !== 0x2581) {
          this.encodeWord(norm.slice(s, i), out);
          s = i;
        }
      }
      if (s < norm.length) this.encodeWord(s === 0 ? norm : norm.slice(s), out);
    }
    if (!this.byteIds) {
      // Consecutive unknowns become one <unk>.
      let w = start;
      for (let r = start; r < out.length; r++) {
        if (out[r] === this.unkId && w > start && out[w - 1] === this.unkId) continue;
        out[w++] = out[r];
      }
      out.length = w;
    }
  }

  private encodeWord(word: string, out: number[]): void {
    if (word.length > MAX_SPAN) {
      for (let s = 0; s < word.length; ) {
        const e = sliceEnd(word, s);
        this.emit(word.slice(s, e), out);
        s = e;
      }
      return;
    }
    if (word.length > CACHE_WORD_MAX) return this.emit(word, out);
    let ids = this.cache.get(word);
    if (!ids) {
      const tmp: number[] = [];
      this.emit(word, tmp);
      ids = Int32Array.from(tmp);
      if (this.cache.size >= CACHE_MAX) this.cache.clear();
      this.cache.set(word, ids);
    }
    for (let i = 0; i < ids.length; i++) out.push(ids[i]);
  }

  private emit(s: string, out: number[]): void {
    const res = this.bpe(s, false);
    const ids = res.ids;
    for (let k = 0; k < ids.length; k++) {
      const id = ids[k];
      if (id === this.unkId && this.byteIds) {
        for (const b of enc.encode(res.pieces[k])) out.push(this.byteIds[b]);
      } else out.push(id);
    }
  }

  /** (left id, right id) -> merged id for every piece that splits into two pieces; built on first use. */
  private mergeTable(): Map<number, number> {
    if (this.merges) return this.merges;
    const m = new Map<number, number>();
    const N = this.vocabSize;
    for (const [p, id] of this.pieceIds) {
      for (let k = 1; k < p.length; k++) {
        const c = p.charCodeAt(k);
        if (c >= 0xdc00 && c <= 0xdfff) continue; // inside a surrogate pair
        const a = this.pieceIds.get(p.slice(0, k));
        if (a === undefined) continue;
        const b = this.pieceIds.get(p.slice(k));
        if (b !== undefined) m.set(a * N + b, id);
      }
    }
    return (this.merges = m);
  }

  /** Id of a one-character symbol (or -1), cached. */
  private charId(s: string, i: number, l: number): number {
    const c = l === 1 ? s.charCodeAt(i) : s.codePointAt(i)!;
    if (c < 0x10000) {
      let v = this.charIds[c];
      if (v === -2) v = this.charIds[c] = this.pieceIds.get(s.slice(i, i + l)) ?? -1;
      return v;
    }
    return this.pieceIds.get(s.slice(i, i + l)) ?? -1;
  }

  /**
   * BPE over one normalized string (bpe_model.cc SampleEncode without dropout). Returns ids
   * (unkId for symbols that are not pieces) and the piece strings (all of them when
   * `wantPieces`, otherwise only for unknown symbols).
   */
  private bpe(s: string, wantPieces: boolean): { ids: number[]; pieces: string[] } {
    const n = s.length;
    const ids: number[] = [];
    const pieces: string[] = [];
    if (n === 0) return { ids, pieces };
    if (this.scratch.start.length < n) this.growScratch(n);
    const { start, end, prev, next, freeze, sym } = this.scratch;
    const merges = this.mergeTable();
    const N = this.vocabSize;
    let m = 0;
    const ud = this.userDefined;
    for (let i = 0; i < n; ) {
      let l = 0;
      let fr = 0;
      if (ud.length && this.userDefinedFirst.has(s.codePointAt(i)!)) {
        for (const u of ud)
          if (s.startsWith(u, i)) {
            l = u.length;
            fr = 1;
            break;
          }
      }
      if (!l) {
        const c = s.charCodeAt(i);
        l = c >= 0xd800 && c <= 0xdbff && i + 1 < n ? 2 : 1;
        sym[m] = this.charId(s, i, l);
      } else sym[m] = this.pieceIds.get(s.slice(i, i + l)) ?? -1;
      start[m] = i;
      end[m] = i + l;
      freeze[m] = fr;
      prev[m] = m - 1;
      next[m] = i + l < n ? m + 1 : -1;
      m++;
      i += l;
    }
    // Agenda: binary max-heap over candidate pairs (score desc, left asc), scratch reused.
    const H = this.heap;
    let hs = 0;
    let hScore = H.score;
    let hLeft = H.left;
    let hSize = H.size;
    let hId = H.id;
    const pieceIds = this.pieceIds;
    const scores = this.scores;
    const types = this.types;
    let revMerge: Map<string, [string, string]> | null = null;
    const better = (a: number, b: number) => hScore[a] > hScore[b] || (hScore[a] === hScore[b] && hLeft[a] < hLeft[b]);
    const swap = (a: number, b: number) => {
      const t = hScore[a];
      hScore[a] = hScore[b];
      hScore[b] = t;
      let u = hLeft[a];
      hLeft[a] = hLeft[b];
      hLeft[b] = u;
      u = hSize[a];
      hSize[a] = hSize[b];
      hSize[b] = u;
      u = hId[a];
      hId[a] = hId[b];
      hId[b] = u;
    };
    const push = (left: number, right: number) => {
      if (left < 0 || right < 0 || freeze[left] || freeze[right]) return;
      const a = sym[left];
      const b = sym[right];
      let id: number | undefined;
      if (a >= 0 && b >= 0) id = merges.get(a * N + b);
      else id = pieceIds.get(s.slice(start[left], end[right]));
      if (id === undefined) return;
      if (hs === hScore.length) {
        const cap = hs * 2;
        const g = <T extends Float64Array | Int32Array>(x: T, C: new (n: number) => T): T => {
          const y = new C(cap);
          y.set(x);
          return y;
        };
        H.score = hScore = g(hScore, Float64Array);
        H.left = hLeft = g(hLeft, Int32Array);
        H.size = hSize = g(hSize, Int32Array);
        H.id = hId = g(hId, Int32Array);
      }
      const i = hs++;
      hScore[i] = scores[id];
      hLeft[i] = left;
      hSize[i] = end[right] - start[left];
      hId[i] = id;
      siftUp(i, better, swap);
      if (types[id] === PieceType.UNUSED)
        (revMerge ??= new Map()).set(s.slice(start[left], end[right]), [s.slice(start[left], end[left]), s.slice(start[right], end[right])]);
    };
    const pop = () => {
      hs = popTop(hs, better, swap);
    };
    for (let i = 1; i < m; i++) push(i - 1, i);
    while (hs > 0) {
      const left = hLeft[0];
      const size = hSize[0];
      const id = hId[0];
      pop();
      const right = next[left];
      // Stale entries: a side was merged away or grew (SentencePiece's size check).
      if (right < 0 || end[left] === start[left] || end[right] - start[left] !== size) continue;
      end[left] = end[right];
      next[left] = next[right];
      if (next[right] >= 0) prev[next[right]] = left;
      start[right] = end[right]; // empty
      sym[left] = id;
      push(prev[left], left);
      push(left, next[left]);
    }
    const unk = this.unkId;
    const resegment = (w: string) => {
      const id = pieceIds.get(w);
      if (id !== undefined && types[id] === PieceType.UNUSED) {
        const p = revMerge?.get(w);
        if (p) {
          resegment(p[0]);
          resegment(p[1]);
          return;
        }
      }
      ids.push(id ?? unk);
      pieces.push(w);
    };
    for (let i = 0; i !== -1; i = next[i]) {
      const id = sym[i];
      if (id >= 0 && types[id] !== PieceType.UNUSED) {
        ids.push(id);
        if (wantPieces) pieces.push(s.slice(start[i], end[i]));
        else pieces.push('');
      } else resegment(s.slice(start[i], end[i]));
    }
    return { ids, pieces };
  }

  /**
   * Decodes ids to text like SentencePiece: control pieces vanish, <unk> becomes unk_surface
   * (" \u2047 "), byte pieces are reassembled into UTF-8 (invalid bytes -> U+FFFD), U+2581 -> space,
   * and the dummy-prefix space of the first piece is dropped.
   */
  decode(ids: ArrayLike<number>): string {
    const pieces = this.proto.pieces;
    const n = pieces.length;
    const spec = this.normalizer;
    const stripBos = spec.addDummyPrefix || spec.removeExtraWhitespaces;
    let text = '';
    let bytes: number[] = [];
    let isBosWs = true;
    let bosWsSeen = false;
    const flush = () => {
      if (bytes.length) {
        text += decodeUtf8Spm(Uint8Array.from(bytes));
        bytes = [];
      }
    };
    for (let k = 0; k < ids.length; k++) {
      const id = ids[k];
      if (!Number.isInteger(id) || id < 0 || id >= n) throw new UserError(`invalid id ${id} (vocabulary has ${n} pieces)`);
      const t = this.types[id];
      if (t === PieceType.BYTE) {
        bytes.push(byteOfPiece(pieces[id].piece));
        continue;
      }
      flush();
      if (bosWsSeen || text.length) isBosWs = false;
      let piece = pieces[id].piece;
      if (t === PieceType.CONTROL) {
        bosWsSeen = false;
        continue;
      }
      if (t === PieceType.UNKNOWN) {
        text += this.unkSurface;
        bosWsSeen = false;
        continue;
      }
      let has = false;
      if (isBosWs && stripBos && piece.startsWith(WS)) {
        piece = piece.slice(1);
        has = !spec.removeExtraWhitespaces;
      }
      bosWsSeen = has;
      text += piece.includes(WS) ? piece.replaceAll(WS, ' ') : piece;
    }
    flush();
    return text;
  }
}
