/**
 * Cleaning in the spirit of CCNet (Wenzek et al. 2019), simplified; see docs/DATA.md. Stages, in order:
 *   1. normalise: Unicode NFC, '\r\n' → '\n', trailing spaces trimmed, runs of blank lines collapsed
 *   2. exact document dedup: a 64-bit hash of the normalised text; later copies are dropped
 *   3. line dedup across the whole source: a line whose normalised form (lower case, digits → 0, whitespace
 *      collapsed) was seen earlier in the source is removed (boilerplate: headers, footers, menus); lines shorter
 *      than `lineDedupMinChars` are kept (blank lines, "Chapter 1"-like short lines are not boilerplate evidence)
 *   4. quality filters: minimum length, minimum share of alphabetic characters, maximum share of repeated lines
 *      within the document
 * Each stage counts the documents and characters it removed.
 */

export interface CleanOptions {
  normalize: boolean;
  dedupDocs: boolean;
  dedupLines: boolean;
  lineDedupMinChars: number;
  minChars: number;
  /** Share of characters (excluding whitespace) that are letters, in [0, 1]. */
  minAlphaShare: number;
  /** Largest allowed share of a document's non-blank lines that duplicate another line of the same document. */
  maxLineRepeat: number;
}

export const CLEAN_DEFAULTS: CleanOptions = {
  normalize: true, dedupDocs: true, dedupLines: true, lineDedupMinChars: 20,
  minChars: 100, minAlphaShare: 0.5, maxLineRepeat: 0.3,
};

export interface StageCount {
  docs: number;
  chars: number;
}

export interface CleanReport {
  input: StageCount;
  normalize: { changedDocs: number; charsDelta: number };
  exactDuplicates: StageCount;
  lineDedup: { lines: number; chars: number; emptiedDocs: number };
  tooShort: StageCount;
  lowAlpha: StageCount;
  repeatedLines: StageCount;
  output: StageCount;
}

export function emptyReport(): CleanReport {
  const z = () => ({ docs: 0, chars: 0 });
  return {
    input: z(), normalize: { changedDocs: 0, charsDelta: 0 }, exactDuplicates: z(),
    lineDedup: { lines: 0, chars: 0, emptiedDocs: 0 }, tooShort: z(), lowAlpha: z(), repeatedLines: z(), output: z(),
  };
}

/** 64-bit string hash (two 32-bit multiply-xor lanes, cyrb53-style) returned as [hi, lo]. */
export function hash64(s: string, seed = 0): [number, number] {
  let h1 = 0xdeadbeef ^ seed;
  let h2 = 0x41c6ce57 ^ seed;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return [h1 >>> 0, h2 >>> 0];
}

/** Open-addressing set of 64-bit hashes: 8 bytes per slot, grows at 50% load. */
export class HashSet64 {
  private table: Uint32Array;
  private mask: number;
  size = 0;

  constructor(capacity = 1 << 16) {
    let n = 16;
    while (n < capacity * 2) n *= 2;
    this.table = new Uint32Array(n * 2);
    this.mask = n - 1;
  }

  /** Adds the hash; returns false if it was already present. The all-zero hash is folded onto [0, 1]. */
  add(hi: number, lo: number): boolean {
    if (hi === 0 && lo === 0) lo = 1;
    let i = (lo ^ Math.imul(hi, 0x9e3779b1)) & this.mask;
    const t = this.table;
    for (;;) {
      const a = t[2 * i];
      const b = t[2 * i + 1];
      if (a === 0 && b === 0) break;
      if (a === hi && b === lo) return false;
      i = (i + 1) & this.mask;
    }
    t[2 * i] = hi;
    t[2 * i + 1] = lo;
    this.size++;
    if (this.size * 2 > this.mask + 1) this.grow();
    return true;
  }

  private grow(): void {
    const old = this.table;
    this.table = new Uint32Array(old.length * 2);
    this.mask = old.length - 1;
    this.size = 0;
    for (let i = 0; i < old.length; i += 2) if (old[i] !== 0 || old[i + 1] !== 0) this.add(old[i], old[i + 1]);
  }

  get bytes(): number {
    return this.table.byteLength;
  }
}

/** The form a line is compared in for dedup (CCNet: lower case, digits replaced, whitespace collapsed). */
export function lineKey(line: string): string {
  return line.toLowerCase().replace(/\d/g, '0').replace(/\s+/g, ' ').trim();
}

const isSpace = (c: number) => c === 32 || c === 9 || c === 10 || c === 13 || c === 11 || c === 12 || c === 0xa0 || (c > 0x1fff && /\s/.test(String.fromCharCode(c)));

/**
 * hash64(lineKey(line), seed) without building the key string (the cleaner's hot loop). Equal to it for every
 * line whose lower-casing maps each UTF-16 unit to one unit (all of Latin, Greek, Cyrillic...); tested.
 */
export function lineKeyHash(line: string, seed: number): [number, number] {
  let h1 = 0xdeadbeef ^ seed;
  let h2 = 0x41c6ce57 ^ seed;
  let pendingSpace = false;
  let started = false;
  for (let i = 0; i < line.length; i++) {
    let c = line.charCodeAt(i);
    if (isSpace(c)) {
      pendingSpace = started;
      continue;
    }
    if (pendingSpace) {
      h1 = Math.imul(h1 ^ 32, 2654435761);
      h2 = Math.imul(h2 ^ 32, 1597334677);
      pendingSpace = false;
    }
    started = true;
    if (c >= 65 && c <= 90) c += 32;
    else if (c >= 48 && c <= 57) c = 48;
    else if (c > 127) {
      const low = String.fromCharCode(c).toLowerCase();
      if (low.length === 1) c = low.charCodeAt(0);
      if (/\d/.test(String.fromCharCode(c))) c = 48;
    }
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return [h1 >>> 0, h2 >>> 0];
}

const LETTER = /\p{L}/u;

export function alphaShare(text: string): number {
  let letters = 0;
  let nonSpace = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 32 || c === 10 || c === 9 || c === 13) continue;
    if (c >= 0xdc00 && c <= 0xdfff) continue; // low surrogate: counted with its high half
    nonSpace++;
    if ((c >= 65 && c <= 90) || (c >= 97 && c <= 122)) letters++;
    else if (c > 127) {
      const ch = c >= 0xd800 && c <= 0xdbff ? text.slice(i, i + 2) : text[i];
      if (LETTER.test(ch)) letters++;
    }
  }
  return nonSpace === 0 ? 0 : letters / nonSpace;
}

/** Share of non-blank lines that repeat an earlier line of the same document. */
export function lineRepeatShare(text: string): number {
  const seen = new Set<string>();
  let lines = 0;
  let dup = 0;
  for (const l of text.split('\n')) {
    const k = l.trim();
    if (!k) continue;
    lines++;
    if (seen.has(k)) dup++;
    else seen.add(k);
  }
  return lines === 0 ? 0 : dup / lines;
}

export function normalizeText(text: string): string {
  return text
    .normalize('NFC')
    .replace(/\r\n?/g, '\n')
    .replace(/[ \t]+$/gm, '')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

/** Cleans the documents of one source in order; dedup state spans the whole source. */
export class Cleaner {
  readonly report = emptyReport();
  private docs = new HashSet64();
  private lines = new HashSet64();
  readonly opts: CleanOptions;

  constructor(opts: Partial<CleanOptions> = {}) {
    this.opts = { ...CLEAN_DEFAULTS, ...opts };
  }

  /** The cleaned document, or null if a stage removed it. */
  clean(raw: string): string | null {
    const o = this.opts;
    const r = this.report;
    r.input.docs++;
    r.input.chars += raw.length;
    let text = raw;
    if (o.normalize) {
      text = normalizeText(raw);
      if (text !== raw) {
        r.normalize.changedDocs++;
        r.normalize.charsDelta += text.length - raw.length;
      }
    }
    if (o.dedupDocs) {
      const [hi, lo] = hash64(text);
      if (!this.docs.add(hi, lo)) {
        r.exactDuplicates.docs++;
        r.exactDuplicates.chars += text.length;
        return null;
      }
    }
    if (o.dedupLines) {
      const kept: string[] = [];
      let removed = false;
      for (const line of text.split('\n')) {
        if (line.trim().length >= o.lineDedupMinChars) {
          const [hi, lo] = lineKeyHash(line, 0x5151);
          if (!this.lines.add(hi, lo)) {
            r.lineDedup.lines++;
            r.lineDedup.chars += line.length + 1;
            removed = true;
            continue;
          }
        }
        kept.push(line);
      }
      if (removed) {
        text = kept.join('\n').replace(/\n{3,}/g, '\n\n').trim();
        if (text.length === 0) {
          r.lineDedup.emptiedDocs++;
          return null;
        }
      }
    }
    if (text.length < o.minChars) return this.drop(r.tooShort, text);
    if (o.minAlphaShare > 0 && alphaShare(text) < o.minAlphaShare) return this.drop(r.lowAlpha, text);
    if (o.maxLineRepeat < 1 && lineRepeatShare(text) > o.maxLineRepeat) return this.drop(r.repeatedLines, text);
    r.output.docs++;
    r.output.chars += text.length;
    return text;
  }

  private drop(c: StageCount, text: string): null {
    c.docs++;
    c.chars += text.length;
    return null;
  }

  /** Memory held by the dedup tables. */
  get dedupBytes(): number {
    return this.docs.bytes + this.lines.bytes;
  }
}

/** The report as aligned lines for the CLI. */
export function formatReport(name: string, r: CleanReport): string[] {
  const pct = (n: number, d: number) => (d ? ((100 * n) / d).toFixed(1) : '0.0') + '%';
  const c = (s: StageCount) => `${s.docs.toLocaleString('en-US')} docs, ${s.chars.toLocaleString('en-US')} chars (${pct(s.chars, r.input.chars)})`;
  return [
    `${name}: input ${r.input.docs.toLocaleString('en-US')} docs, ${r.input.chars.toLocaleString('en-US')} chars`,
    `  normalise         changed ${r.normalize.changedDocs} docs, ${r.normalize.charsDelta} chars`,
    `  exact duplicates  removed ${c(r.exactDuplicates)}`,
    `  line dedup        removed ${r.lineDedup.lines.toLocaleString('en-US')} lines, ${r.lineDedup.chars.toLocaleString('en-US')} chars (${pct(r.lineDedup.chars, r.input.chars)}); ${r.lineDedup.emptiedDocs} docs emptied`,
    `  too short         removed ${c(r.tooShort)}`,
    `  low alphabetic    removed ${c(r.lowAlpha)}`,
    `  repeated lines    removed ${c(r.repeatedLines)}`,
    `  kept              ${c(r.output)}`,
  ];
}
