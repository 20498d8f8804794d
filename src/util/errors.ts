/**
 * A mistake the user can fix (bad flag, missing file, corrupt checkpoint...).
 * The CLI prints its message as one line and exits non-zero, without a stack trace.
 */
export class UserError extends Error {
  constructor(message: string) {
    super(message);
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
