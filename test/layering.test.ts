/**
 * Layering: every import between folders of src/ runs downward, as the table in docs/ARCHITECTURE.md ("## Layers")
 * says. The table is the single statement of the order: its level column (peers share a level) and its "depends on"
 * column (exactly the folders a layer imports, util left out as the ground) are parsed here and held against the
 * imports read from src/**\/*.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const src = join(root, 'src');
const DOC = 'docs/ARCHITECTURE.md';
const GROUND = 'util';
/** src/index.ts, the package entry: above every layer. */
const ENTRY = '(src/index.ts)';

interface Layer {
  level: number;
  /** null: "everything below" */
  dependsOn: Set<string> | null;
}

function parseLayerTable(): Map<string, Layer> {
  const doc = readFileSync(join(root, DOC), 'utf8');
  const at = doc.search(/^## Layers\b/m);
  assert.ok(at >= 0, `${DOC} has no '## Layers' section`);
  const section = doc.slice(at).split(/\n## /)[0];
  const layers = new Map<string, Layer>();
  for (const line of section.split('\n')) {
    const cells = line.split(/(?<!\\)\|/).slice(1, -1).map((c) => c.trim());
    const m = cells.length >= 4 ? /^`src\/([\w-]+)`$/.exec(cells[1]) : null;
    if (!m) continue;
    assert.match(cells[0], /^\d+$/, `${DOC}: level of src/${m[1]} is '${cells[0]}', not a number`);
    const deps = cells[3];
    layers.set(m[1], {
      level: Number(cells[0]),
      dependsOn: /^everything\b/.test(deps) ? null : new Set(deps === '—' || deps === '' ? [] : deps.split(',').map((d) => d.trim())),
    });
  }
  assert.ok(layers.size >= 10, `${DOC}: the layer table parsed into only ${layers.size} rows`);
  return layers;
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? tsFiles(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** Relative module specifiers of a file: import/export … from, side-effect import, import(), worker `new URL(…, import.meta.url)`. */
export function importsOf(text: string): { spec: string; url: boolean }[] {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const out: { spec: string; url: boolean }[] = [];
  const patterns: [RegExp, boolean][] = [
    [/\b(?:import|export)\s[^;'"]*?\bfrom\s*['"]([^'"]+)['"]/g, false],
    [/^\s*import\s*['"]([^'"]+)['"]/gm, false],
    [/\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g, false],
    [/\bnew\s+URL\s*\(\s*['"]([^'"]+)['"]\s*,\s*import\.meta\.url\s*\)/g, true],
  ];
  for (const [re, url] of patterns) for (const m of code.matchAll(re)) if (m[1].startsWith('.')) out.push({ spec: m[1], url });
  return out;
}

/** The layer a path under src/ belongs to: its first folder, or ENTRY for src/index.ts. */
function layerOf(rel: string): string {
  const parts = rel.split(sep);
  return parts.length === 1 ? (rel === 'index.ts' || rel === 'index.js' ? ENTRY : rel) : parts[0];
}

interface Edge { from: string; to: string; file: string; spec: string }

function crossFolderImports(): { edges: Edge[]; outside: string[] } {
  const edges: Edge[] = [];
  const outside: string[] = [];
  for (const file of tsFiles(src)) {
    const relFile = relative(src, file);
    for (const { spec, url } of importsOf(readFileSync(file, 'utf8'))) {
      const target = resolve(dirname(file), spec);
      const relTarget = relative(src, target);
      if (relTarget.startsWith('..')) {
        // a data file beside the package (resources/, data/) is fine; code outside src/ is not part of the library
        if (!url) outside.push(`src/${relFile} imports '${spec}' (outside src/)`);
        continue;
      }
      const from = layerOf(relFile), to = layerOf(relTarget);
      if (from !== to) edges.push({ from, to, file: `src/${relFile}`, spec });
    }
  }
  return { edges, outside };
}

test(`layering: imports between src/ folders follow the layer table in ${DOC}`, (t) => {
  const layers = parseLayerTable();
  const { edges, outside } = crossFolderImports();
  assert.ok(edges.length > 20, `only ${edges.length} imports between folders were read: the import reader is broken`);
  const problems: string[] = [...outside];

  const folders = readdirSync(src).filter((n) => statSync(join(src, n)).isDirectory());
  for (const f of folders) if (!layers.has(f)) problems.push(`src/${f} is not in the layer table of ${DOC}: give it a level there`);
  for (const f of layers.keys()) if (!folders.includes(f)) problems.push(`${DOC} lists src/${f}, which does not exist`);

  const seen = new Map<string, Set<string>>();
  for (const e of edges) {
    if (e.to === ENTRY) {
      problems.push(`${e.file} imports '${e.spec}': nothing in src/ may import the package entry src/index.ts`);
      continue;
    }
    if (e.from === ENTRY) continue;
    const a = layers.get(e.from), b = layers.get(e.to);
    if (!a || !b) continue; // reported above
    if (!seen.has(e.from)) seen.set(e.from, new Set());
    seen.get(e.from)!.add(e.to);
    if (b.level > a.level) problems.push(`${e.file} imports '${e.spec}': ${e.from} (level ${a.level}) reaches up into ${e.to} (level ${b.level})`);
    else if (b.level === a.level) problems.push(`${e.file} imports '${e.spec}': ${e.from} and ${e.to} are peers (both level ${a.level}) and must not import each other`);
  }

  for (const [f, layer] of layers) {
    if (!layer.dependsOn) continue;
    const actual = new Set([...(seen.get(f) ?? [])].filter((d) => d !== GROUND));
    for (const d of actual) if (!layer.dependsOn.has(d)) problems.push(`src/${f} imports src/${d}, but its "depends on" in ${DOC} does not list it`);
    for (const d of layer.dependsOn) if (!actual.has(d)) problems.push(`${DOC} says src/${f} depends on ${d}, but nothing in src/${f} imports src/${d}`);
  }

  for (const [f, deps] of [...seen].sort((x, y) => layers.get(x[0])!.level - layers.get(y[0])!.level)) {
    t.diagnostic(`${layers.get(f)!.level} ${f} -> ${[...deps].sort().join(', ')}`);
  }
  assert.deepEqual(problems, [], `layering broken:\n  ${problems.join('\n  ')}`);
});

test('layering: the import reader sees every form of import', () => {
  const text = [
    "import type { A } from '../a/x.js';",
    "import {\n  B,\n  C,\n} from '../b/y.js';",
    "export { D } from './d.js';",
    "export * from '../e/z.js';",
    "import '../f/side.js';",
    "const m = await import('../g/dyn.js');",
    "new Worker(new URL('./w.js', import.meta.url));",
    "import { readFileSync } from 'node:fs';",
    "// import { no } from '../comment/line.js';",
    "/* import { no } from '../comment/block.js'; */",
  ].join('\n');
  assert.deepEqual(importsOf(text).map((i) => i.spec).sort(),
    ['../a/x.js', '../b/y.js', '../e/z.js', '../f/side.js', '../g/dyn.js', './d.js', './w.js']);
});
