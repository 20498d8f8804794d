/** UTF-8 helpers that follow SentencePiece's rules (each invalid byte becomes one U+FFFD). */

/**
 * Length of the valid UTF-8 character at buf[i], or 0 when the bytes there are not a valid,
 * shortest-form, non-surrogate scalar value (SentencePiece's IsValidDecodeUTF8).
 */
export function validCharLen(buf: Uint8Array, i: number, end = buf.length): number {
  const b0 = buf[i];
  if (b0 < 0x80) return 1;
  if (b0 < 0xc2) return 0;
  if (b0 < 0xe0) return i + 1 < end && (buf[i + 1] & 0xc0) === 0x80 ? 2 : 0;
  if (b0 < 0xf0) {
    if (i + 2 >= end) return 0;
    const b1 = buf[i + 1];
    if ((b1 & 0xc0) !== 0x80 || (buf[i + 2] & 0xc0) !== 0x80) return 0;
    if (b0 === 0xe0 && b1 < 0xa0) return 0; // overlong
    if (b0 === 0xed && b1 >= 0xa0) return 0; // surrogate
    return 3;
  }
  if (b0 < 0xf5) {
    if (i + 3 >= end) return 0;
    const b1 = buf[i + 1];
    if ((b1 & 0xc0) !== 0x80 || (buf[i + 2] & 0xc0) !== 0x80 || (buf[i + 3] & 0xc0) !== 0x80) return 0;
    if (b0 === 0xf0 && b1 < 0x90) return 0;
    if (b0 === 0xf4 && b1 >= 0x90) return 0;
    return 4;
  }
  return 0;
}

const dec = new TextDecoder('utf-8', { ignoreBOM: true });

/** Decodes bytes to a string, replacing every invalid byte by U+FFFD (SentencePiece style, not WHATWG). */
export function decodeUtf8Spm(buf: Uint8Array): string {
  // Fast path: valid UTF-8 decodes identically.
  let i = 0;
  const n = buf.length;
  let ok = true;
  while (i < n) {
    if (buf[i] < 0x80) {
      i++;
      continue;
    }
    const l = validCharLen(buf, i, n);
    if (!l) {
      ok = false;
      break;
    }
    i += l;
  }
  if (ok) return dec.decode(buf);
  const parts: string[] = [dec.decode(buf.subarray(0, i))];
  let start = i;
  while (i < n) {
    const l = buf[i] < 0x80 ? 1 : validCharLen(buf, i, n);
    if (l) i += l;
    else {
      if (start < i) parts.push(dec.decode(buf.subarray(start, i)));
      parts.push('\ufffd');
      i++;
      start = i;
    }
  }
  if (start < n) parts.push(dec.decode(buf.subarray(start, n)));
  return parts.join('');
}

/** Replaces lone surrogates by U+FFFD (what encoding the string as UTF-8 would do). */
export function wellFormed(s: string): string {
  const f = (s as unknown as { toWellFormed?: () => string }).toWellFormed;
  if (f) return f.call(s);
  return s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
}
