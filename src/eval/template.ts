/**
 * The prompt templates of a task: text with `{{ expression }}` slots filled from a document (the subset of Jinja that
 * lm-evaluation-harness task files use for field access). An expression is a field path: `question`,
 * `passage.title`, `choices.text`, `choices[0]`, `endings[label]` (a bracket holds an integer or another field of
 * the document), `choices.label.index(answerKey)` (the position of a field's value in a list: ARC's letter → index). A template that is exactly one slot yields the field's value as it is (a number, a list), which is
 * how `doc_to_choice: "{{choices}}"` gives a list and `doc_to_target: "{{label}}"` an index.
 */

/** A parsed template: literal text and expressions, alternating. */
export interface Template {
  source: string;
  parts: Array<string | Path>;
}

/** One step of a field path: a field name, an integer index, or a bracketed field whose value is the key. */
type Step = { kind: 'field'; name: string } | { kind: 'index'; index: number } | { kind: 'ref'; path: Path } | { kind: 'indexOf'; path: Path };
export interface Path {
  text: string;
  steps: Step[];
}

/** A template or document problem; the caller adds the file and line. */
export class TemplateError extends Error {}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*/;

function parsePath(text: string): Path {
  const s = text.trim();
  const steps: Step[] = [];
  let i = 0;
  const fail = (why: string): never => {
    throw new TemplateError(`bad template variable {{${text}}}: ${why}`);
  };
  const name = (): string => {
    const m = NAME.exec(s.slice(i));
    if (!m) fail(`expected a field name at ${JSON.stringify(s.slice(i, i + 10)) || 'the end'}`);
    i += m![0].length;
    return m![0];
  };
  if (s.length === 0) fail('empty expression');
  steps.push({ kind: 'field', name: name() });
  while (i < s.length) {
    if (s[i] === '.') {
      i++;
      const n = name();
      if (n === 'index' && s[i] === '(') {
        const close = s.indexOf(')', i);
        if (close < 0) fail("missing ')'");
        steps.push({ kind: 'indexOf', path: parsePath(s.slice(i + 1, close)) });
        i = close + 1;
      } else steps.push({ kind: 'field', name: n });
    } else if (s[i] === '[') {
      const close = s.indexOf(']', i);
      if (close < 0) fail("missing ']'");
      const inner = s.slice(i + 1, close).trim();
      if (/^\d+$/.test(inner)) steps.push({ kind: 'index', index: Number(inner) });
      else if (/^(['"]).*\1$/.test(inner)) steps.push({ kind: 'field', name: inner.slice(1, -1) });
      else steps.push({ kind: 'ref', path: parsePath(inner) });
      i = close + 1;
    } else {
      fail(`unexpected ${JSON.stringify(s[i])} (only field paths such as a.b[0] or a[b] are supported)`);
    }
  }
  return { text: s, steps };
}

export function parseTemplate(source: string): Template {
  const parts: Template['parts'] = [];
  let i = 0;
  while (i < source.length) {
    const open = source.indexOf('{{', i);
    if (open < 0) {
      parts.push(source.slice(i));
      break;
    }
    if (open > i) parts.push(source.slice(i, open));
    const close = source.indexOf('}}', open + 2);
    if (close < 0) throw new TemplateError(`unclosed '{{' in template ${JSON.stringify(source.slice(open, open + 30))}`);
    parts.push(parsePath(source.slice(open + 2, close)));
    i = close + 2;
  }
  if (source.includes('{%')) throw new TemplateError("Jinja statements ('{% … %}') are not supported; use field paths in {{ … }}");
  return { source, parts };
}

function describe(v: unknown): string {
  return Array.isArray(v) ? 'a list' : v === null ? 'null' : typeof v;
}

/** The value a path names in a document; a TemplateError naming the path when a step is missing. */
export function resolvePath(p: Path, doc: unknown): unknown {
  let v: unknown = doc;
  let where = '';
  for (const st of p.steps) {
    let key: string | number;
    if (st.kind === 'indexOf') {
      const want = resolvePath(st.path, doc);
      if (!Array.isArray(v)) throw new TemplateError(`template variable {{${p.text}}}: ${where} is ${describe(v)}, not a list`);
      const at = v.indexOf(want);
      if (at < 0) throw new TemplateError(`template variable {{${p.text}}}: ${JSON.stringify(want)} is not in ${where}`);
      v = at;
      where += `.index(${st.path.text})`;
      continue;
    }
    if (st.kind === 'field') key = st.name;
    else if (st.kind === 'index') key = st.index;
    else {
      const k = resolvePath(st.path, doc);
      if (typeof k !== 'number' && typeof k !== 'string') throw new TemplateError(`template variable {{${p.text}}}: the key ${st.path.text} is ${describe(k)}, not a number or string`);
      key = k;
    }
    if (typeof key === 'number' || (Array.isArray(v) && /^\d+$/.test(key))) {
      const n = Number(key);
      if (!Array.isArray(v)) throw new TemplateError(`template variable {{${p.text}}}: ${where || 'the document'} is ${describe(v)}, not a list`);
      if (!Number.isInteger(n) || n < 0 || n >= v.length) throw new TemplateError(`template variable {{${p.text}}}: index ${n} is out of range (${where} has ${v.length} items)`);
      v = v[n];
      where += `[${n}]`;
    } else {
      if (v === null || typeof v !== 'object' || Array.isArray(v) || !Object.prototype.hasOwnProperty.call(v, key)) {
        throw new TemplateError(`template variable {{${p.text}}}: the document has no field '${where ? `${where}.` : ''}${key}'`);
      }
      v = (v as Record<string, unknown>)[key];
      where += where ? `.${key}` : key;
    }
  }
  return v;
}

/** The template's value for a document: the raw value when the template is one slot, otherwise the filled text. */
export function renderValue(t: Template, doc: unknown): unknown {
  if (t.parts.length === 1 && typeof t.parts[0] !== 'string') return resolvePath(t.parts[0], doc);
  return renderText(t, doc);
}

/** The filled text; every slot must hold a string or a number. */
export function renderText(t: Template, doc: unknown): string {
  let out = '';
  for (const p of t.parts) {
    if (typeof p === 'string') {
      out += p;
      continue;
    }
    const v = resolvePath(p, doc);
    if (typeof v === 'string') out += v;
    else if (typeof v === 'number' || typeof v === 'boolean') out += String(v);
    else throw new TemplateError(`template variable {{${p.text}}} is ${describe(v)}, not text`);
  }
  return out;
}
