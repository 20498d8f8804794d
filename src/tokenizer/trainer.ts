/**
 * BPE trainer following SentencePiece's bpe_model_trainer.cc / trainer_interface.cc:
 * sentences are normalized, characters kept up to `characterCoverage` (the rest become unknown),
 * sentences split into whitespace-prefixed words, and the most frequent adjacent symbol pair is
 * merged repeatedly (ties: shorter piece, then smaller piece in UTF-8 byte order). Pieces obey
 * SentencePiece's validity rules (max length, no mixed Unicode scripts, digits alone with
 * splitDigits, U+2581 only as a prefix unless whitespace-only pieces are allowed).
 *
 * Unlike SentencePiece, which rescans a "top 5% active" set of pairs every 100 merges, this
 * keeps exact incremental pair counts and a lazy max-heap, so every merge costs only the work on
 * the occurrences it changes. Results are the exact greedy BPE; SentencePiece's heuristic can
 * rarely pick a different pair, so vocabularies overlap strongly but not necessarily 100%.
 */
import { siftUp, popTop } from './heap.js';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { UserError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { Normalizer, WS } from './normalizer.js';
import { ModelType, PieceType, type ModelProto, type NormalizerSpec, type Piece, type TrainerSpec } from './model-proto.js';
import { scriptOf, SCRIPT_HAN, SCRIPT_HIRAGANA, SCRIPT_INHERITED, SCRIPT_KATAKANA } from './unicode-script.js';

export interface TrainBpeOptions {
  /** Training text: sentences (one per element), or a string split on newlines. */
  input: string | Iterable<string>;
  vocabSize: number;
  /** Fraction of characters (by count) kept in the alphabet (0.98..1, default 0.9995). */
  characterCoverage?: number;
  splitDigits?: boolean;
  byteFallback?: boolean;
  /** Maximum piece length in characters (1..512, default 16). */
  maxPieceLength?: number;
  allowWhitespaceOnlyPieces?: boolean;
  splitByUnicodeScript?: boolean;
  splitByNumber?: boolean;
  splitByWhitespace?: boolean;
  treatWhitespaceAsSuffix?: boolean;
  userDefinedSymbols?: string[];
  controlSymbols?: string[];
  /** Use at most this many sentences (0 = all), sampled uniformly unless shuffleInputSentence is false. */
  inputSentenceSize?: number;
  shuffleInputSentence?: boolean;
  seed?: number;
  /** Sentences longer than this many UTF-8 bytes are skipped (default 4192). */
  maxSentenceLength?: number;
  /** 'nmt_nfkc' (SentencePiece's default) or 'identity' (LLaMA). */
  normalization?: 'nmt_nfkc' | 'identity';
  addDummyPrefix?: boolean;
  removeExtraWhitespaces?: boolean;
  unkId?: number;
  bosId?: number;
  eosId?: number;
  padId?: number;
  /** Files named in the trainer_spec.input of the result (informational). */
  inputNames?: string[];
  /** Called with progress messages. */
  log?: (msg: string) => void;
}

const UNK_CHAR = 0x2585;
const WS_CP = 0x2581;
const TAB = 0x09;

let nfkcBlob: Uint8Array | null = null;
/** SentencePiece's compiled nmt_nfkc rule (resources/tokenizer/nmt_nfkc.charsmap, from spm_train). */
export function nmtNfkcCharsmap(): Uint8Array {
  if (!nfkcBlob) {
    const path = fileURLToPath(new URL('../../../resources/tokenizer/nmt_nfkc.charsmap', import.meta.url));
    nfkcBlob = new Uint8Array(readFileSync(path));
  }
  return nfkcBlob;
}

function cmpCodePoints(a: string, b: string): number {
  // UTF-8 byte order == code point order; JS < compares UTF-16 units, which differs above U+FFFF.
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(i)!;
    if (x !== y) return x < y ? -1 : 1;
    if (x > 0xffff) i++;
  }
  return a.length - b.length;
}

function isDecimal(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0xff10 && c <= 0xff19);
}

function validCodepoint(c: number): boolean {
  return c < 0xd800 || (c >= 0xe000 && c <= 0x10ffff);
}

/** Trains a BPE model; returns the ModelProto (write it with serializeModelProto). */
export function trainBpe(o: TrainBpeOptions): ModelProto {
  const log = o.log ?? (() => {});
  const vocabSize = o.vocabSize;
  const coverage = o.characterCoverage ?? 0.9995;
  const maxLen = o.maxPieceLength ?? 16;
  const maxSentenceLength = o.maxSentenceLength ?? 4192;
  if (!Number.isInteger(vocabSize) || vocabSize <= 0) throw new UserError(`vocab size must be a positive integer, got ${vocabSize}`);
  if (!(coverage >= 0.98 && coverage <= 1)) throw new UserError(`character coverage must be in [0.98, 1], got ${coverage}`);
  if (!(Number.isInteger(maxLen) && maxLen >= 1 && maxLen <= 512)) throw new UserError(`max piece length must be in [1, 512], got ${maxLen}`);
  if (!(Number.isInteger(maxSentenceLength) && maxSentenceLength >= 10)) throw new UserError(`max sentence length must be an integer >= 10, got ${maxSentenceLength}`);
  const splitDigits = o.splitDigits ?? false;
  const byteFallback = o.byteFallback ?? false;
  const allowWsOnly = o.allowWhitespaceOnlyPieces ?? false;
  const splitByScript = o.splitByUnicodeScript ?? true;
  const splitByNumber = o.splitByNumber ?? true;
  const splitByWs = o.splitByWhitespace ?? true;
  const wsSuffix = o.treatWhitespaceAsSuffix ?? false;
  const normalization = o.normalization ?? 'nmt_nfkc';
  if (normalization !== 'nmt_nfkc' && normalization !== 'identity') throw new UserError(`unknown normalization '${String(normalization)}' (nmt_nfkc or identity)`);

  // ---- meta pieces (InitMetaPieces) ----
  const unkId = o.unkId ?? 0;
  const bosId = o.bosId ?? 1;
  const eosId = o.eosId ?? 2;
  const padId = o.padId ?? -1;
  const meta = new Map<number, [string, PieceType]>();
  const metaNames = new Set<string>();
  for (const [id, name, t] of [
    [unkId, '<unk>', PieceType.UNKNOWN],
    [bosId, '<s>', PieceType.CONTROL],
    [eosId, '</s>', PieceType.CONTROL],
    [padId, '<pad>', PieceType.CONTROL],
  ] as [number, string, PieceType][]) {
    if (id < 0) continue;
    if (id >= vocabSize || meta.has(id)) throw new UserError(`special piece id ${id} of ${name} is out of range or used twice`);
    meta.set(id, [name, t]);
    metaNames.add(name);
  }
  if (unkId < 0) throw new UserError('<unk> must have an id');
  let nextId = 0;
  const addMeta = (w: string, t: PieceType) => {
    if (!w) throw new UserError('empty user-defined/control symbol');
    if (w === '<unk>') throw new UserError('<unk> must not be a control or user-defined symbol');
    for (const [id, v] of meta)
      if (v[0] === w) {
        if (id === unkId || [...metaNames].indexOf(w) < 0) throw new UserError(`${w} is already defined`);
        v[1] = t; // re-typing <s>, </s>, <pad>
        return;
      }
    while (meta.has(nextId)) nextId++;
    meta.set(nextId, [w, t]);
  };
  for (const w of o.controlSymbols ?? []) addMeta(w, PieceType.CONTROL);
  for (const w of o.userDefinedSymbols ?? []) addMeta(w, PieceType.USER_DEFINED);
  if (byteFallback) for (let b = 0; b < 256; b++) addMeta(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, PieceType.BYTE);
  for (const id of meta.keys()) if (id >= vocabSize) throw new UserError(`vocab size ${vocabSize} is too small for the ${meta.size} special pieces`);

  // ---- load sentences (LoadSentences) ----
  const lines: Iterable<string> = typeof o.input === 'string' ? o.input.split('\n') : o.input;
  const limit = o.inputSentenceSize ?? 0;
  const shuffle = o.shuffleInputSentence ?? true;
  const rng = new Rng(o.seed ?? 12345678);
  let sentences: string[] = [];
  let total = 0;
  let tooLong = 0;
  for (const s of lines) {
    if (!s) continue;
    if (s.length > maxSentenceLength || (s.length * 3 > maxSentenceLength && Buffer.byteLength(s) > maxSentenceLength)) {
      tooLong++;
      continue;
    }
    if (s.includes('\u2585')) continue;
    total++;
    if (limit > 0) {
      if (shuffle) {
        if (sentences.length < limit) sentences.push(s);
        else {
          const j = Math.floor(rng.next() * total);
          if (j < limit) sentences[j] = s;
        }
      } else {
        sentences.push(s);
        if (sentences.length >= limit) break;
      }
    } else sentences.push(s);
  }
  if (tooLong) log(`skipped ${tooLong} sentences longer than ${maxSentenceLength} bytes`);
  log(`loaded ${sentences.length} of ${total} sentences`);
  if (sentences.length === 0) throw new UserError('training input is empty (no non-empty lines of acceptable length)');

  // ---- normalize; meta pieces in the text become boundaries ----
  const normSpec: NormalizerSpec = {
    name: normalization,
    precompiledCharsmap: normalization === 'nmt_nfkc' ? nmtNfkcCharsmap() : undefined,
    addDummyPrefix: o.addDummyPrefix ?? true,
    removeExtraWhitespaces: o.removeExtraWhitespaces ?? true,
    escapeWhitespaces: true,
  };
  const normalizer = new Normalizer({ spec: normSpec, treatWhitespaceAsSuffix: wsSuffix });
  const metaList = [...meta.values()].map((v) => v[0]).sort((a, b) => b.length - a.length);
  const metaRe = metaList.length ? new RegExp(metaList.map((m) => m.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'g') : null;
  const normalized: string[] = [];
  for (const s of sentences) {
    let n = normalizer.normalize(s);
    if (metaRe) n = n.replace(metaRe, '\t');
    if (n) normalized.push(n);
  }
  sentences = [];
  if (normalized.length === 0) throw new UserError('training input is empty after normalization');

  // ---- alphabet by character coverage ----
  const charCount = new Map<number, number>();
  let allChars = 0;
  for (const s of normalized)
    for (let i = 0; i < s.length; i++) {
      const c = s.codePointAt(i)!;
      if (c > 0xffff) i++;
      if (!validCodepoint(c) || c === 0 || c === 0x20) continue;
      charCount.set(c, (charCount.get(c) ?? 0) + 1);
      allChars++;
    }
  const sortedChars = [...charCount].sort((a, b) => b[1] - a[1] || a[0] - b[0]);
  const required = new Map<number, number>();
  let acc = 0;
  const cov32 = Math.fround(coverage);
  for (const [c, n] of sortedChars) {
    if (Math.fround(acc / allChars) >= cov32) break;
    acc += n;
    if (c === TAB) continue;
    required.set(c, n);
  }
  log(`alphabet size ${required.size}, character coverage ${(acc / allChars).toFixed(6)}`);
  if (required.size + meta.size > vocabSize)
    throw new UserError(`vocab size ${vocabSize} is smaller than the ${required.size} required characters + ${meta.size} special pieces; increase the vocab size or lower the character coverage`);

  // ---- words (SplitSentencesByWhitespace), rare chars -> UNK ----
  const wordFreq = new Map<string, number>();
  const addWord = (w: string) => {
    if (w) wordFreq.set(w, (wordFreq.get(w) ?? 0) + 1);
  };
  const reqBmp = new Uint8Array(0x10000);
  for (const c of required.keys()) if (c <= 0xffff) reqBmp[c] = 1;
  const isReq = (c: number) => (c <= 0xffff ? reqBmp[c] === 1 : required.has(c));
  const fastSplit = !wsSuffix ? (allowWsOnly ? /(?<!\u2581)(?=\u2581)/ : /(?=\u2581)/) : null;
  for (const s0 of normalized) {
    let s = s0;
    for (let i = 0; i < s0.length; i++) {
      const c = s0.codePointAt(i)!;
      if (!isReq(c)) {
        // Rebuild with rare characters replaced by the unknown character.
        let r = '';
        for (const ch of s0) r += isReq(ch.codePointAt(0)!) ? ch : '\u2585';
        s = r;
        break;
      }
      if (c > 0xffff) i++;
    }
    if (splitByWs && fastSplit) {
      for (const w of s.split(fastSplit)) addWord(w);
      continue;
    }
    if (!splitByWs) {
      addWord(s);
      continue;
    }
    // SplitIntoWords
    if (wsSuffix) {
      let cur = '';
      let inWs = false;
      for (const ch of s) {
        const isWs = ch === WS;
        if (isWs) inWs = true;
        else if (inWs) {
          if (allowWsOnly) {
            addWord(cur);
            cur = '';
          }
          inWs = false;
        }
        cur += ch;
        if (isWs && !allowWsOnly) {
          addWord(cur);
          cur = '';
        }
      }
      addWord(cur);
    } else {
      let cur = '';
      let inWs = false;
      let first = true;
      for (const ch of s) {
        const isWs = ch === WS;
        if (first || (isWs && (!inWs || !allowWsOnly))) {
          addWord(cur);
          cur = '';
          inWs = true;
        }
        first = false;
        if (inWs && !isWs) inWs = false;
        cur += ch;
      }
      addWord(cur);
    }
  }
  normalized.length = 0;
  const words = [...wordFreq].sort((a, b) => b[1] - a[1] || cmpCodePoints(a[0], b[0]));
  wordFreq.clear();
  log(`${words.length} distinct words`);

  // ---- symbols ----
  // Symbol table: char symbols and merged symbols (identified by their (left, right) tree, as in SentencePiece).
  const symStr: string[] = [];
  const symLen: number[] = []; // in code points
  const symUnk: boolean[] = [];
  const charSym = new Map<number, number>();
  const getCharSym = (c: number): number => {
    let id = charSym.get(c);
    if (id === undefined) {
      id = symStr.length;
      symStr.push(String.fromCodePoint(c));
      symLen.push(1);
      symUnk.push(c === UNK_CHAR);
      charSym.set(c, id);
    }
    return id;
  };

  // Flat position arrays over all words.
  let nPos = 0;
  for (const [w] of words) nPos += w.length;
  const sym = new Int32Array(nPos);
  const nxt = new Int32Array(nPos);
  const prv = new Int32Array(nPos);
  const posFreq = new Float64Array(nPos);
  let p = 0;
  for (const [w, f] of words) {
    const start = p;
    for (let i = 0; i < w.length; i++) {
      const c = w.codePointAt(i)!;
      if (c > 0xffff) i++;
      sym[p] = getCharSym(c);
      posFreq[p] = f;
      prv[p] = p === start ? -1 : p - 1;
      nxt[p] = p + 1;
      p++;
    }
    if (p > start) nxt[p - 1] = -1;
  }
  nPos = p;

  // Piece validity (IsValidSentencePiece) on a candidate string.
  const validPiece = (s: string, len: number): boolean => {
    if (len > maxLen) return false;
    let allWs = true;
    for (const ch of s) if (ch !== WS) { allWs = false; break; }
    let prevScript = -1;
    let pos = 0;
    for (let i = 0; i < s.length; i++, pos++) {
      const c = s.codePointAt(i)!;
      if (c > 0xffff) i++;
      if (c === UNK_CHAR || c === 0 || c === TAB || c === 0x20 || !validCodepoint(c)) return false;
      if (c === WS_CP) {
        if (!allowWsOnly || !allWs) {
          if (wsSuffix) {
            if ((splitByWs && pos < len - 1) || (!splitByWs && pos < len - 1 && pos === 0)) return false;
          } else if ((splitByWs && pos > 0) || (!splitByWs && pos > 0 && pos === len - 1)) return false;
        }
        continue;
      }
      let sc = scriptOf(c);
      if (sc === SCRIPT_HIRAGANA || sc === SCRIPT_KATAKANA || c === 0x30fc) sc = SCRIPT_HAN;
      else if (sc === SCRIPT_INHERITED) sc = prevScript;
      const dec = isDecimal(c);
      if (!splitByNumber && dec) sc = -1;
      if (splitDigits && dec && len > 1) return false;
      if (splitByScript && sc !== -1 && prevScript !== -1 && prevScript !== sc) return false;
      prevScript = sc;
    }
    return true;
  };

  // Pairs: key (left, right) -> pair index; -1 marks "invalid, never a piece".
  const pairOf = new Map<number, number>();
  const pairKey = (a: number, b: number) => a * 0x4000000 + b; // both < 2^26
  let pLeft: number[] = [];
  let pRight: number[] = [];
  let pFreq: number[] = [];
  let pStr: string[] = [];
  let pLen: number[] = [];
  let pPos: number[][] = [];
  // Lazy max-heap of (freq snapshot, pair).
  let hFreq = new Float64Array(1 << 16);
  let hPair = new Int32Array(1 << 16);
  let hs = 0;
  const better = (i: number, j: number): boolean => {
    const fa = hFreq[i];
    const fb = hFreq[j];
    if (fa !== fb) return fa > fb;
    const a = hPair[i];
    const b = hPair[j];
    if (pLen[a] !== pLen[b]) return pLen[a] < pLen[b];
    return cmpCodePoints(pStr[a], pStr[b]) < 0;
  };
  const hswap = (i: number, j: number) => {
    const f = hFreq[i];
    hFreq[i] = hFreq[j];
    hFreq[j] = f;
    const q = hPair[i];
    hPair[i] = hPair[j];
    hPair[j] = q;
  };
  const hpush = (pair: number) => {
    if (hs === hFreq.length) {
      const f = new Float64Array(hs * 2);
      f.set(hFreq);
      hFreq = f;
      const q = new Int32Array(hs * 2);
      q.set(hPair);
      hPair = q;
    }
    const i = hs++;
    hFreq[i] = pFreq[pair];
    hPair[i] = pair;
    siftUp(i, better, hswap);
  };
  const hpop = () => {
    hs = popTop(hs, better, hswap);
  };

  /** Pair index for adjacent symbols (creating it), or -1 if their concatenation can't be a piece. */
  const getPair = (a: number, b: number): number => {
    const k = pairKey(a, b);
    let id = pairOf.get(k);
    if (id !== undefined) return id;
    if (symUnk[a] || symUnk[b]) id = -1;
    else {
      const s = symStr[a] + symStr[b];
      const len = symLen[a] + symLen[b];
      if (!validPiece(s, len)) id = -1;
      else {
        id = pFreq.length;
        pLeft.push(a);
        pRight.push(b);
        pFreq.push(0);
        pStr.push(s);
        pLen.push(len);
        pPos.push([]);
      }
    }
    pairOf.set(k, id);
    return id;
  };

  // Initial pair counts.
  for (let i = 0; i < nPos; i++) {
    const j = nxt[i];
    if (j < 0) continue;
    const pr = getPair(sym[i], sym[j]);
    if (pr < 0) continue;
    pFreq[pr] += posFreq[i];
    pPos[pr].push(i);
  }
  for (let pr = 0; pr < pFreq.length; pr++) if (pFreq[pr] > 0) hpush(pr);

  const target = vocabSize - meta.size - required.size;
  const finalPieces: string[] = [];
  const dup = new Set<string>();
  const touched = new Set<number>();
  const changeFreq = (pr: number, d: number) => {
    pFreq[pr] += d;
    touched.add(pr);
  };

  while (finalPieces.length < target) {
    // Pop the best pair with an up-to-date count.
    let best = -1;
    while (hs > 0) {
      const pr = hPair[0];
      const f = hFreq[0];
      hpop();
      if (pLeft[pr] < 0 || f !== pFreq[pr] || f <= 0) continue; // stale or dead
      best = pr;
      break;
    }
    if (best < 0) break;
    const bestStr = pStr[best];
    const a = pLeft[best];
    const b = pRight[best];
    // Retire the pair: a later (a, b) adjacency starts a fresh pair, as in SentencePiece.
    pairOf.delete(pairKey(a, b));
    pLeft[best] = -1;
    const positions = pPos[best];
    pPos[best] = [];
    if (dup.has(bestStr)) continue;
    dup.add(bestStr);
    finalPieces.push(bestStr);
    if (finalPieces.length % 1000 === 0) log(`${finalPieces.length} pieces, last '${bestStr}' freq ${pFreq[best]}`);

    // The merged symbol.
    const c = symStr.length;
    symStr.push(bestStr);
    symLen.push(pLen[best]);
    symUnk.push(false);

    positions.sort((x, y) => x - y);
    touched.clear();
    for (const i of positions) {
      const j = nxt[i];
      if (j < 0 || sym[i] !== a || sym[j] !== b) continue; // stale occurrence
      const f = posFreq[i];
      const pi = prv[i];
      const nj = nxt[j];
      if (pi >= 0) {
        const pr = pairOf.get(pairKey(sym[pi], a));
        if (pr !== undefined && pr >= 0) changeFreq(pr, -f);
      }
      if (nj >= 0) {
        const pr = pairOf.get(pairKey(b, sym[nj]));
        if (pr !== undefined && pr >= 0) changeFreq(pr, -f);
      }
      sym[i] = c;
      sym[j] = -1;
      nxt[i] = nj;
      if (nj >= 0) prv[nj] = i;
      if (pi >= 0) {
        const pr = getPair(sym[pi], c);
        if (pr >= 0) {
          changeFreq(pr, f);
          pPos[pr].push(pi);
        }
      }
      if (nj >= 0) {
        const pr = getPair(c, sym[nj]);
        if (pr >= 0) {
          changeFreq(pr, f);
          pPos[pr].push(i);
        }
      }
    }
    for (const pr of touched) if (pLeft[pr] >= 0 && pFreq[pr] > 0) hpush(pr);
    // Compact the heap when stale entries dominate.
    if (hs > 4 * pFreq.length + 65536) {
      const live: number[] = [];
      for (let pr = 0; pr < pFreq.length; pr++) if (pLeft[pr] >= 0 && pFreq[pr] > 0) live.push(pr);
      hs = 0;
      for (const pr of live) hpush(pr);
    }
  }
  if (finalPieces.length < target) {
    const max = finalPieces.length + required.size + meta.size;
    throw new UserError(`vocab size ${vocabSize} is too large for this corpus: at most ${max} pieces can be learned; use a smaller vocab size`);
  }
  // Required characters, most frequent first.
  const reqSorted = [...required].sort((x, y) => y[1] - x[1] || x[0] - y[0]);
  const learned = finalPieces.concat(reqSorted.map(([ch]) => String.fromCodePoint(ch)));

  // ---- Serialize ----
  const pieces: Piece[] = [];
  let fid = 0;
  const seen = new Set<string>();
  for (let id = 0; id < vocabSize; id++) {
    const m = meta.get(id);
    let piece: Piece;
    if (m) piece = { piece: m[0], score: 0, type: m[1] };
    else if (fid < learned.length) {
      piece = { piece: learned[fid], score: Math.fround(-fid), type: PieceType.NORMAL };
      fid++;
    } else break;
    if (seen.has(piece.piece)) throw new UserError(`piece '${piece.piece}' is defined twice (a user-defined symbol clashes with a learned piece)`);
    seen.add(piece.piece);
    pieces.push(piece);
  }
  const trainerSpec: TrainerSpec = {
    input: o.inputNames ?? [],
    modelPrefix: '',
    modelType: ModelType.BPE,
    vocabSize,
    selfTestSampleSize: 0,
    characterCoverage: coverage,
    inputSentenceSize: limit,
    shuffleInputSentence: shuffle,
    maxSentenceLength,
    numThreads: 1,
    maxSentencepieceLength: maxLen,
    splitByUnicodeScript: splitByScript,
    splitByNumber,
    splitByWhitespace: splitByWs,
    treatWhitespaceAsSuffix: wsSuffix,
    allowWhitespaceOnlyPieces: allowWsOnly,
    splitDigits,
    controlSymbols: o.controlSymbols ?? [],
    userDefinedSymbols: o.userDefinedSymbols ?? [],
    byteFallback,
    vocabularyOutputPieceScore: true,
    hardVocabLimit: true,
    useAllVocab: false,
    unkId,
    bosId,
    eosId,
    padId,
    unkPiece: '<unk>',
    bosPiece: '<s>',
    eosPiece: '</s>',
    padPiece: '<pad>',
    unkSurface: ' \u2047 ',
  };
  return { pieces, trainerSpec, normalizerSpec: normSpec };
}
