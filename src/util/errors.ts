/**
 * A mistake the user can fix (bad flag, missing file, corrupt checkpoint...).
 * The CLI prints its message as one line and exits non-zero, without a stack trace.
 *
 * The message is made safe to print whatever went into it: line breaks, terminal escape sequences and other
 * control or invisible characters are shown escaped (`\n`, `\x1b`, `\u202e`), lone surrogates as `\ud800`, and a
 * message longer than MAX_MESSAGE characters is cut in the middle. Readers quoting bytes from a file use
 * `quoted()` to keep each quotation short.
 */
export class UserError extends Error {
  constructor(message: string) {
    super(oneLine(message));
    this.name = 'UserError';
  }
}

export function userAssert(cond: unknown, message: string): asserts cond {
  if (!cond) throw new UserError(message);
}

/**
 * Untrusted text (a flag's value, bytes from a file) for an error message: JSON-quoted, so control characters and
 * terminal escapes are escaped, and cut to `max` characters.
 */
export function quote(text: unknown, max = 80): string {
  const s = String(text);
  const cut = s.length > max ? `${s.slice(0, max)}…` : s;
  return JSON.stringify(cut);
}

/** A value from an untrusted JSON file for an error message: its JSON text (escaped), cut to `max` characters. */
export function quoteJson(value: unknown, max = 80): string {
  const s = JSON.stringify(value) ?? String(value);
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

export const MAX_MESSAGE = 1000;

// C0/C1 controls, DEL, line/paragraph separators, bidi and zero-width formatting characters, BOM, lone surrogates
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

function escapeChar(c: string): string {
  const n = c.charCodeAt(0);
  if (c === '\n') return '\\n';
  if (c === '\r') return '\\r';
  if (c === '\t') return '\\t';
  return n < 0x100 ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u${n.toString(16).padStart(4, '0')}`;
}

/** Escapes what a terminal would interpret (controls, escapes, bidi overrides); leaves other text as it is. */
export function escapeUnsafe(s: string): string {
  return s.replace(UNSAFE, escapeChar);
}

/** One printable line of at most `max` characters (cut in the middle, marked with '…'). */
export function oneLine(s: string, max = MAX_MESSAGE): string {
  const e = escapeUnsafe(String(s));
  if (e.length <= max) return e;
  const head = Math.ceil((max - 1) * 0.7);
  return `${e.slice(0, head)}…${e.slice(e.length - (max - 1 - head))}`;
}

/** Untrusted text (a name or value read from a file) for a message: escaped, cut to `max` characters, in quotes. */
export function quoted(s: unknown, max = 60): string {
  const e = escapeUnsafe(String(s));
  return `'${e.length <= max ? e : e.slice(0, max) + '…'}'`;
}
