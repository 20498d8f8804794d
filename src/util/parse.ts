/** Numbers from command-line text, with the one-line errors the CLI prints (`--NAME expects …`). */
import { UserError } from './errors.js';

/** A finite number, or a UserError naming the flag. */
export function parseNumber(text: unknown, name: string): number {
  const n = Number(text);
  if (typeof text !== 'string' || text.trim() === '' || !Number.isFinite(n)) throw new UserError(`--${name} expects a number, got '${String(text)}'`);
  return n;
}

/** An integer ≥ min, or a UserError naming the flag. */
export function parseInteger(text: unknown, name: string, min = 0): number {
  const n = parseNumber(text, name);
  if (!Number.isInteger(n) || n < min) throw new UserError(`--${name} expects an integer >= ${min}, got '${String(text)}'`);
  return n;
}
