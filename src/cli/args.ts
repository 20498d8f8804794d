/** Thin wrapper over node:util parseArgs that turns parse failures into one-line user errors. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UserError } from '../util/errors.js';

export type Options = NonNullable<ParseArgsConfig['options']>;

export type Value = string | boolean | (string | boolean)[] | undefined;
export type Values = Record<string, Value>;

export function parse(argv: string[], options: Options, allowPositionals = false): { values: Values; positionals: string[] } {
  try {
    const r = parseArgs({ args: argv, options: { help: { type: 'boolean', short: 'h' }, ...options }, allowPositionals, strict: true });
    return { values: r.values as Values, positionals: r.positionals };
  } catch (e) {
    throw new UserError((e as Error).message.split('\n')[0]);
  }
}

export function num(v: Value, name: string, dflt: number): number;
export function num(v: Value, name: string, dflt?: number): number | undefined;
export function num(v: Value, name: string, dflt?: number): number | undefined {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (typeof v !== 'string' || v.trim() === '' || !Number.isFinite(n)) throw new UserError(`--${name} expects a number, got '${String(v)}'`);
  return n;
}

export function int(v: Value, name: string, dflt: number, min?: number): number;
export function int(v: Value, name: string, dflt?: number, min?: number): number | undefined;
export function int(v: Value, name: string, dflt?: number, min = 0): number | undefined {
  const n = num(v, name, dflt);
  if (n === undefined) return undefined;
  if (!Number.isInteger(n) || n < min) throw new UserError(`--${name} expects an integer >= ${min}, got '${String(v)}'`);
  return n;
}

export function str(v: Value): string | undefined {
  return typeof v === 'string' ? v : undefined;
}
