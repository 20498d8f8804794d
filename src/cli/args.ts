/** Thin wrapper over node:util parseArgs that turns parse failures into one-line user errors. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UserError } from '../util/errors.js';
import { parseInteger, parseNumber } from '../util/parse.js';

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
  return v === undefined ? dflt : parseNumber(v, name);
}

export function int(v: Value, name: string, dflt: number, min?: number): number;
export function int(v: Value, name: string, dflt?: number, min?: number): number | undefined;
export function int(v: Value, name: string, dflt?: number, min = 0): number | undefined {
  return v === undefined ? dflt : parseInteger(v, name, min);
}

export function str(v: Value): string | undefined {
  return typeof v === 'string' ? v : undefined;
}
