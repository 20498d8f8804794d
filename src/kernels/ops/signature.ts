/**
 * The argument language of the op table (ops/table.ts): what an op's arguments are, parsed once into a `Signature`
 * that both backends check calls against — the ref backend here in TypeScript (`checkCall`), the native addon in
 * C++ (native/addon.cc reads `encodeSignature`'s text once when the op is bound, then checks every call itself).
 *
 * One argument is `name: kind`, `name: kind[length]`, `name?: kind` (may be omitted: an int reads 0, a bool false)
 * or `name: kind[length] | null` (a buffer that may be null). Kinds:
 *   f     float buffer of the backend's element type (native: Float32Array)
 *   i32   Int32Array        f64   Float64Array        u8   Uint8Array (bytes: quantized blocks)
 *   bf16  Uint16Array of bfloat16 bits
 *   int   a size: an integer 0 ≤ n ≤ 2^40
 *   num   any number        bool  a flag
 *   AttentionShape | RopeTable | AdamWParams   an object whose fields (STRUCTS) are read as arguments of their own
 * A length is integer arithmetic (+ - * / %, parentheses; / rounds down) over int arguments and fields; a length
 * that is a single name not otherwise declared binds that name to the buffer's length (`tokens: i32[n]`).
 * `where` conditions (`lhs op rhs`, op one of == != < <= > >=) hold between int values; their message may quote
 * values as {expression}.
 *
 * A call is checked in this order: scalars (TypeError when not a number, RangeError for a bad size), buffers that
 * bind a length, `where` conditions, then every other buffer against its length (TypeError for a wrong type or a
 * missing buffer, RangeError `<op>: <name> has N elements, shape needs M`).
 */
import { need } from '../backend.js';

/** Fields of the object arguments, in the order the native addon reads them. */
export const STRUCTS = {
  AttentionShape: ['batch: int', 'seq: int', 'nHeads: int', 'nKvHeads: int', 'headDim: int'],
  RopeTable: ['cos: f64[maxSeqLen*(headDim/2)]', 'sin: f64[maxSeqLen*(headDim/2)]', 'headDim: int', 'maxSeqLen: int'],
  AdamWParams: ['lr: num', 'beta1: num', 'beta2: num', 'eps: num', 'weightDecay: num', 'step: num'],
} as const;

export type ScalarKind = 'int' | 'num' | 'bool';
export type BufferKind = 'f' | 'i32' | 'f64' | 'u8' | 'bf16';

/** Integer expression in postfix order: a variable index, a literal, or an operator. */
export type Rpn = readonly (number | { lit: number } | '+' | '-' | '*' | '/' | '%')[];

export interface Slot {
  /** The argument's name (a field's own name for a field of an object argument). */
  name: string;
  kind: ScalarKind | BufferKind;
  /** Position in the call. */
  arg: number;
  /** Property read from the object at `arg`, or null for a plain argument. */
  field: string | null;
  /** Name of the object argument a field belongs to (for messages), else null. */
  parent: string | null;
  optional: boolean;
  nullable: boolean;
  /** Variable index an int scalar defines, else -1. */
  v: number;
  /** Variable index a buffer's length binds, else -1. */
  bind: number;
  /** A buffer's required length, or null (no requirement, or a binding). */
  len: Rpn | null;
}

export interface Condition {
  lhs: Rpn;
  cmp: '==' | '!=' | '<' | '<=' | '>' | '>=';
  rhs: Rpn;
  /** Literal text and expressions to quote, alternating (text first). */
  message: (string | Rpn)[];
}

export interface Signature {
  op: string;
  slots: Slot[];
  /** Names of the int variables (scalars and bound lengths), by index. */
  vars: string[];
  where: Condition[];
  returns: 'void' | 'num';
}

export interface OpSpec {
  args: readonly string[];
  returns: 'void' | 'num';
  where: readonly (readonly [string, string])[];
}

const ARG = /^([A-Za-z_]\w*)(\?)?:\s*([A-Za-z_]\w*)(?:\[(.*)\])?(\s*\|\s*null)?$/;
const BUFFERS = new Set(['f', 'i32', 'f64', 'u8', 'bf16']);
const SCALARS = new Set(['int', 'num', 'bool']);

export function parseSignature(op: string, spec: OpSpec): Signature {
  const fail = (why: string): never => {
    throw new Error(`op table: ${op}: ${why}`);
  };
  const slots: Slot[] = [];
  const vars: string[] = [];
  const pending: { slot: Slot; expr: string }[] = [];
  const add = (text: string, arg: number, parent: string | null): void => {
    const m = ARG.exec(text.trim());
    if (!m) return fail(`cannot read argument '${text}'`);
    const [, name, opt, kind, len, nul] = m;
    if (kind in STRUCTS) {
      if (parent || len !== undefined || nul) return fail(`'${text}': an object argument takes no length`);
      for (const f of STRUCTS[kind as keyof typeof STRUCTS]) add(f, arg, name);
      return;
    }
    if (!BUFFERS.has(kind) && !SCALARS.has(kind)) return fail(`'${text}': unknown kind ${kind}`);
    if (slots.some((s) => s.name === name)) return fail(`'${name}' declared twice`);
    const isBuf = BUFFERS.has(kind);
    if (!isBuf && (len !== undefined || nul)) return fail(`'${text}': a scalar takes no length`);
    const slot: Slot = {
      name, kind: kind as Slot['kind'], arg, field: parent ? name : null, parent, optional: !!opt, nullable: !!nul,
      v: -1, bind: -1, len: null,
    };
    if (kind === 'int') slot.v = vars.push(name) - 1;
    slots.push(slot);
    if (isBuf && len !== undefined) pending.push({ slot, expr: len });
  };
  spec.args.forEach((a, i) => add(a, i, null));
  // a length that is a lone undeclared name binds it; the rest are expressions over the int variables
  for (const { slot, expr } of pending) {
    const id = expr.trim();
    if (/^[A-Za-z_]\w*$/.test(id) && !vars.includes(id) && !slots.some((s) => s.name === id)) slot.bind = vars.push(id) - 1;
  }
  const compile = (expr: string): Rpn => toRpn(expr, vars, fail);
  for (const { slot, expr } of pending) if (slot.bind < 0) slot.len = compile(expr);
  const where = spec.where.map(([cond, msg]): Condition => {
    const m = /^(.*?)(==|!=|<=|>=|<|>)(.*)$/.exec(cond);
    if (!m) return fail(`condition '${cond}' has no comparison`);
    const message: (string | Rpn)[] = [];
    let rest = msg;
    for (let at = rest.indexOf('{'); at >= 0; at = rest.indexOf('{')) {
      const end = rest.indexOf('}', at);
      if (end < 0) return fail(`message '${msg}': unclosed {`);
      message.push(rest.slice(0, at), compile(rest.slice(at + 1, end)));
      rest = rest.slice(end + 1);
    }
    message.push(rest);
    return { lhs: compile(m[1]), cmp: m[2] as Condition['cmp'], rhs: compile(m[3]), message };
  });
  return { op, slots, vars, where, returns: spec.returns };
}

const PREC: Record<string, number> = { '+': 1, '-': 1, '*': 2, '/': 2, '%': 2 };

function toRpn(expr: string, vars: string[], fail: (why: string) => never): Rpn {
  const out: (number | { lit: number } | '+' | '-' | '*' | '/' | '%')[] = [];
  const ops: string[] = [];
  const toks = expr.match(/[A-Za-z_]\w*|\d+|[-+*/%()]|\S/g) ?? [];
  if (toks.length === 0) fail(`empty expression`);
  for (const t of toks) {
    if (/^\d+$/.test(t)) out.push({ lit: Number(t) });
    else if (/^[A-Za-z_]/.test(t)) {
      const v = vars.indexOf(t);
      if (v < 0) fail(`'${expr}': ${t} is not an int argument`);
      out.push(v);
    } else if (t === '(') ops.push(t);
    else if (t === ')') {
      while (ops.length && ops[ops.length - 1] !== '(') out.push(ops.pop() as '+');
      if (!ops.pop()) fail(`'${expr}': unbalanced )`);
    } else if (t in PREC) {
      while (ops.length && PREC[ops[ops.length - 1]] >= PREC[t]) out.push(ops.pop() as '+');
      ops.push(t);
    } else fail(`'${expr}': unexpected ${t}`);
  }
  while (ops.length) {
    const o = ops.pop() as string;
    if (o === '(') fail(`'${expr}': unbalanced (`);
    out.push(o as '+');
  }
  return out;
}

/** Value of an expression; NaN when it divides by zero. */
export function evalRpn(rpn: Rpn, vars: ArrayLike<number>): number {
  const st: number[] = [];
  for (const t of rpn) {
    if (typeof t === 'number') st.push(vars[t]);
    else if (typeof t === 'object') st.push(t.lit);
    else {
      const b = st.pop() as number;
      const a = st.pop() as number;
      st.push(t === '+' ? a + b : t === '-' ? a - b : t === '*' ? a * b : b === 0 ? NaN : t === '/' ? Math.floor(a / b) : a % b);
    }
  }
  return st[0];
}

function holds(c: Condition, vars: ArrayLike<number>): boolean {
  const a = evalRpn(c.lhs, vars), b = evalRpn(c.rhs, vars);
  switch (c.cmp) {
    case '==': return a === b;
    case '!=': return a !== b;
    case '<': return a < b;
    case '<=': return a <= b;
    case '>': return a > b;
    default: return a >= b;
  }
}

const MAX_SIZE = 2 ** 40;

/**
 * Checks one call against its signature (the ref backend; the native addon does the same in C++). Buffers are
 * checked for presence and length only, so a ref backend may compute in float32 or float64.
 */
export function checkCall(sig: Signature, args: ArrayLike<unknown>): void {
  const { op, slots } = sig;
  const vars = new Array<number>(sig.vars.length).fill(0);
  const value = (s: Slot): unknown => {
    const a = args[s.arg];
    if (s.field === null) return a;
    if (typeof a !== 'object' || a === null) throw new TypeError(`${op}: ${s.parent} must be an object`);
    return (a as Record<string, unknown>)[s.field];
  };
  for (const s of slots) {
    if (s.kind !== 'int' && s.kind !== 'num') continue;
    const d = value(s);
    if (d === undefined && s.optional) continue;
    if (typeof d !== 'number') throw new TypeError(`${op}: ${s.name} must be a number`);
    if (s.kind === 'int') {
      if (!(d >= 0 && d <= MAX_SIZE && Number.isInteger(d))) throw new RangeError(`${op}: bad size ${d} for ${s.name}`);
      vars[s.v] = d;
    }
  }
  const buffer = (s: Slot): ArrayLike<number> | null => {
    const a = value(s);
    if (a === null && s.nullable) return null;
    if (a === null || typeof a !== 'object' || typeof (a as ArrayLike<number>).length !== 'number') {
      throw new TypeError(`${op}: ${s.name} must be a ${s.kind === 'i32' ? 'Int32Array' : s.kind === 'f64' ? 'Float64Array' : s.kind === 'u8' ? 'Uint8Array' : s.kind === 'bf16' ? 'Uint16Array (bfloat16 bits)' : 'float array'}`);
    }
    if (s.kind === 'u8' && !(a instanceof Uint8Array)) throw new TypeError(`${op}: ${s.name} must be a Uint8Array`);
    return a as ArrayLike<number>;
  };
  for (const s of slots) if (s.bind >= 0) vars[s.bind] = buffer(s)?.length ?? 0;
  for (const c of sig.where) {
    if (!holds(c, vars)) throw new RangeError(`${op}: ${c.message.map((p) => (typeof p === 'string' ? p : String(evalRpn(p, vars)))).join('')}`);
  }
  for (const s of slots) {
    if (s.kind === 'int' || s.kind === 'num' || s.kind === 'bool' || s.bind >= 0) continue;
    const a = buffer(s);
    if (a && s.len) need(s.name, a, evalRpn(s.len, vars), op);
  }
}

/**
 * The signature as the native addon reads it (native/addon.cc, `compile`): one record a line, fields split by tabs.
 *   r <void|num>
 *   v <name>                                           an int variable, in index order
 *   s <kind> <arg> <field|-> <parent|-> <o><n> <v> <bind> <name> <length>
 *   w <lhs> <cmp> <rhs> <message>
 * Expressions are postfix, space-separated: `v3` a variable, a decimal literal, or one of + - * / %; in a message
 * each {…} holds one.
 */
export function encodeSignature(sig: Signature): string {
  const rpn = (r: Rpn | null): string => (r ?? []).map((t) => (typeof t === 'number' ? `v${t}` : typeof t === 'object' ? String(t.lit) : t)).join(' ');
  const lines = [`r\t${sig.returns}`, ...sig.vars.map((v) => `v\t${v}`)];
  for (const s of sig.slots) {
    lines.push(['s', s.kind, s.arg, s.field ?? '-', s.parent ?? '-', `${s.optional ? 'o' : '-'}${s.nullable ? 'n' : '-'}`, s.v, s.bind, s.name, rpn(s.len)].join('\t'));
  }
  for (const c of sig.where) {
    lines.push(['w', rpn(c.lhs), c.cmp, rpn(c.rhs), c.message.map((p) => (typeof p === 'string' ? p : `{${rpn(p)}}`)).join('')].join('\t'));
  }
  return lines.join('\n');
}
