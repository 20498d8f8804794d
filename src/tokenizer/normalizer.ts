/**
 * SentencePiece's normalizer: the precompiled character map of the model (a Darts-clone
 * double-array trie, e.g. nmt_nfkc) applied by longest prefix match, then whitespace handling:
 * remove_extra_whitespaces, add_dummy_prefix, escape_whitespaces (space -> U+2581) and
 * treat_whitespace_as_suffix. With an empty charsmap (LLaMA's "identity") only whitespace rules apply.
 */
import { UserError } from '../util/errors.js';
import { validCharLen, wellFormed } from './utf8.js';
import type { NormalizerSpec } from './model-proto.js';

export const WS = '\u2581';
const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { ignoreBOM: true });

/** Read-only Darts-clone double array as stored in SentencePiece's precompiled_charsmap. */
class CharsMap {
  private units: Uint32Array;
  private normalized: Uint8Array;
  private cache = new Map<number, string>();
  constructor(blob: Uint8Array) {
    if (blob.length <= 4) throw new UserError('.model file: precompiled_charsmap is broken');
    const dv = new DataView(blob.buffer, blob.byteOffset, blob.length);
    const trieSize = dv.getUint32(0, true);
    if (trieSize >= blob.length || trieSize % 4 !== 0) throw new UserError('.model file: precompiled_charsmap trie size exceeds the blob');
    this.units = new Uint32Array(trieSize / 4);
    for (let i = 0; i < this.units.length; i++) this.units[i] = dv.getUint32(4 + 4 * i, true);
    this.normalized = blob.subarray(4 + trieSize);
  }
  /** Longest match at buf[i..end): [matched byte length, replacement] or null. */
  match(buf: Uint8Array, i: number, end: number): [number, string] | null {
    const u = this.units;
    const n = u.length;
    if (n === 0) return null;
    let node = 0;
    let unit = u[0];
    node ^= (unit >>> 10) << ((unit & (1 << 9)) >>> 6);
    let bestLen = 0;
    let bestVal = -1;
    for (let k = i; k < end; k++) {
      const c = buf[k];
      node ^= c;
      if (node >= n) break;
      unit = u[node];
      if ((unit & 0x800000ff) >>> 0 !== c) break;
      node ^= (unit >>> 10) << ((unit & (1 << 9)) >>> 6);
      if (node >= n) break;
      if ((unit >>> 8) & 1) {
        bestLen = k - i + 1;
        bestVal = u[node] & 0x7fffffff;
      }
    }
    if (!bestLen) return null;
    let s = this.cache.get(bestVal);
    if (s === undefined) {
      if (bestVal >= this.normalized.length) throw new UserError('.model file: precompiled_charsmap value out of range');
      let e = bestVal;
      while (e < this.normalized.length && this.normalized[e] !== 0) e++;
      s = dec.decode(this.normalized.subarray(bestVal, e));
      this.cache.set(bestVal, s);
    }
    return [bestLen, s];
  }
}

export interface NormalizerOptions {
  spec: NormalizerSpec;
  treatWhitespaceAsSuffix?: boolean;
  /** Strings copied through unnormalized (user-defined symbols). */
  protectedStrings?: string[];
}

export class Normalizer {
  readonly addDummyPrefix: boolean;
  readonly removeExtraWhitespaces: boolean;
  readonly escapeWhitespaces: boolean;
  readonly treatWhitespaceAsSuffix: boolean;
  private charsMap: CharsMap | null;
  private protectedBytes: Uint8Array[];
  private protectedStr: string[];

  constructor(o: NormalizerOptions) {
    const s = o.spec;
    this.addDummyPrefix = s.addDummyPrefix ?? true;
    this.removeExtraWhitespaces = s.removeExtraWhitespaces ?? true;
    this.escapeWhitespaces = s.escapeWhitespaces ?? true;
    this.treatWhitespaceAsSuffix = o.treatWhitespaceAsSuffix ?? false;
    this.charsMap = s.precompiledCharsmap && s.precompiledCharsmap.length ? new CharsMap(s.precompiledCharsmap) : null;
    if (!this.charsMap && s.name && !['identity', ''].includes(s.name) && !s.normalizationRuleTsv)
      // A named rule without its compiled map normalizes nothing in SentencePiece either.
      this.charsMap = null;
    this.protectedStr = [...(o.protectedStrings ?? [])].filter((x) => x.length > 0).sort((a, b) => b.length - a.length);
    this.protectedBytes = this.protectedStr.map((x) => enc.encode(x));
  }

  get isIdentity(): boolean {
    return this.charsMap === null;
  }

  /** Normalizes text (a string, or raw bytes where invalid UTF-8 bytes become U+FFFD one by one). */
  normalize(input: string | Uint8Array): string {
    if (typeof input === 'string') {
      if (this.charsMap === null) {
        if (this.protectedStr.length === 0) return this.fastIdentity(wellFormed(input));
        return this.finish(this.unitsFromString(wellFormed(input)));
      }
      input = enc.encode(input);
    }
    return this.finish(this.unitsFromBytes(input));
  }

  /** Same result as finish(unitsFromString(s)) for identity models without user-defined symbols. */
  private fastIdentity(s: string): string {
    const rm = this.removeExtraWhitespaces;
    const space = this.escapeWhitespaces ? WS : ' ';
    if (rm) {
      s = s.replace(/^ +/, '');
      if (!s) return '';
      s = s.replace(/ {2,}/g, ' ');
    } else if (!s) return '';
    if (this.escapeWhitespaces) s = s.replaceAll(' ', WS);
    if (!this.treatWhitespaceAsSuffix && this.addDummyPrefix) s = space + s;
    if (rm) {
      let e = s.length;
      while (e >= space.length && s.endsWith(space, e)) e -= space.length;
      s = s.slice(0, e);
    }
    if (this.treatWhitespaceAsSuffix && this.addDummyPrefix) s += space;
    return s;
  }

  /** Identity normalization of a JS string: one unit per code point (user-defined symbols kept whole). */
  private *unitsFromString(s: string): Generator<string> {
    const prot = this.protectedStr;
    for (let i = 0; i < s.length; ) {
      if (prot.length) {
        let hit = '';
        for (const p of prot)
          if (s.startsWith(p, i)) {
            hit = p;
            break;
          }
        if (hit) {
          yield hit;
          i += hit.length;
          continue;
        }
      }
      const c = s.charCodeAt(i);
      const l = c >= 0xd800 && c <= 0xdbff ? 2 : 1;
      yield l === 1 ? s[i] : s.slice(i, i + 2);
      i += l;
    }
  }

  /**
   * Normalized units of raw bytes. Characters that the charsmap leaves alone (and that are not
   * spaces) are yielded as whole runs, which finish() treats exactly like single characters.
   */
  private unitsFromBytes(b: Uint8Array): string[] {
    const units: string[] = [];
    const buf = Buffer.from(b.buffer, b.byteOffset, b.length);
    const n = b.length;
    const prot = this.protectedBytes;
    const cm = this.charsMap;
    let run = 0; // start of the pending run of unchanged characters
    for (let i = 0; i < n; ) {
      if (prot.length) {
        let hit = -1;
        for (let k = 0; k < prot.length; k++) {
          const p = prot[k];
          if (i + p.length > n) continue;
          let j = 0;
          while (j < p.length && b[i + j] === p[j]) j++;
          if (j === p.length) {
            hit = k;
            break;
          }
        }
        if (hit >= 0) {
          if (run < i) units.push(buf.toString('utf8', run, i));
          units.push(this.protectedStr[hit]);
          i += prot[hit].length;
          run = i;
          continue;
        }
      }
      if (cm) {
        const m = cm.match(b, i, n);
        if (m) {
          if (run < i) units.push(buf.toString('utf8', run, i));
          units.push(m[1]);
          i += m[0];
          run = i;
          continue;
        }
      }
      const c = b[i];
      if (c === 0x20) {
        if (run < i) units.push(buf.toString('utf8', run, i));
        units.push(' ');
        run = ++i;
        continue;
      }
      const l = c < 0x80 ? 1 : validCharLen(b, i, n);
      if (!l) {
        if (run < i) units.push(buf.toString('utf8', run, i));
        units.push('\ufffd');
        run = ++i;
      } else i += l;
    }
    if (run < n) units.push(buf.toString('utf8', run, n));
    return units;
  }

  /** SentencePiece's Normalizer::Normalize whitespace logic over normalized units. */
  private finish(units: Iterable<string>): string {
    const rm = this.removeExtraWhitespaces;
    const esc = this.escapeWhitespaces;
    const space = esc ? WS : ' ';
    const out: string[] = [];
    let started = false;
    let isPrevSpace = rm;
    for (let sp of units) {
      if (!started) {
        if (rm && sp === ' ') continue; // heading spaces
        started = true;
        if (!this.treatWhitespaceAsSuffix && this.addDummyPrefix) out.push(space);
      }
      if (isPrevSpace) {
        let k = 0;
        while (k < sp.length && sp.charCodeAt(k) === 32) k++;
        if (k) sp = sp.slice(k);
      }
      if (sp.length) {
        out.push(esc && sp.includes(' ') ? sp.replaceAll(' ', WS) : sp);
        isPrevSpace = sp.charCodeAt(sp.length - 1) === 32;
      }
      if (!rm) isPrevSpace = false;
    }
    if (!started) return '';
    let r = out.join('');
    if (rm) {
      let e = r.length;
      while (e >= space.length && r.endsWith(space, e)) e -= space.length;
      r = r.slice(0, e);
    }
    if (this.treatWhitespaceAsSuffix && this.addDummyPrefix) r += space;
    return r;
  }
}
