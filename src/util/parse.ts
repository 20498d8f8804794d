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

const QUANTITY = /^([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(k|K|M|B|G|T|Ki|Mi|Gi|Ti)?$/;
const SUFFIX: Record<string, number> = { k: 1e3, K: 1e3, M: 1e6, B: 1e9, G: 1e9, T: 1e12, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };

/** A non-negative whole quantity such as 4194304, 4Mi or 1.4T (k, M, B/G, T: powers of 1000; Ki, Mi, Gi, Ti: of 1024). */
export function parseQuantity(text: unknown, name: string): number {
  const m = typeof text === 'string' ? QUANTITY.exec(text.trim()) : null;
  const n = m ? Math.round(Number(m[1]) * (m[2] ? SUFFIX[m[2]] : 1)) : NaN;
  if (!Number.isFinite(n)) throw new UserError(`--${name} expects a number such as 4194304, 4Mi or 1.4T, got '${String(text)}'`);
  return n;
}
