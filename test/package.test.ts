/**
 * The npm package: `npm pack` ships the built library, the CLI, the native sources with their build script, the
 * tokenizer resources and the demo data, and nothing else (no tests, fixtures, tools, benchmarks or TypeScript
 * sources); the tarball installs into a fresh project and works there: the CLI through npx, the library from an .mjs
 * and from TypeScript with its declarations.
 *
 * The pack runs with --ignore-scripts on the dist/ that `npm test` has just built (a plain `npm pack` runs `prepare`,
 * which rebuilds dist/ from scratch, and would pull dist/ away from the test files running beside this one). The
 * install skips the native build (LLAMA_TS_SKIP_NATIVE=1), which takes longer than the rest of the test together;
 * the install script's notice is checked instead.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeConfig, paramCount } from '../src/index.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name: string; scripts: Record<string, string> };
const isWin = process.platform === 'win32';

let tmp = '';
let app = '';
let installed = '';
let packed: { filename: string; entryCount: number; size: number; unpackedSize: number; files: { path: string }[] };
let installLog = '';

function run(cmd: string, args: string[], cwd: string, env: Record<string, string> = {}): { stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, ...env }, shell: isWin, timeout: 120_000 });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} (in ${cwd}) exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
  return { stdout: r.stdout, stderr: r.stderr };
}

before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'llama-ts-pack-'));
  packed = JSON.parse(run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], root).stdout)[0];
  app = join(tmp, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  // the dependencies are in the npm cache after `npm ci`; the registry is asked only for what is missing
  const r = run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--foreground-scripts', join(tmp, packed.filename)], app,
    { LLAMA_TS_SKIP_NATIVE: '1' });
  installLog = r.stdout + r.stderr;
  installed = join(app, 'node_modules', pkg.name);
});

after(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

function listFiles(dir: string): string[] {
  return readdirSync(join(root, dir)).flatMap((n) => {
    const p = join(dir, n);
    return statSync(join(root, p)).isDirectory() ? listFiles(p) : [p.split('\\').join('/')];
  });
}

test('package: the tarball holds the library, CLI, native sources, resources and demo data, and nothing else', (t) => {
  const files = new Set(packed.files.map((f) => f.path));
  t.diagnostic(`${packed.filename}: ${packed.entryCount} files, ${(packed.size / 1e6).toFixed(2)} MB packed, ${(packed.unpackedSize / 1e6).toFixed(2)} MB unpacked`);
  const needed = [
    'package.json', 'README.md', 'bin/llama-ts.js', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/cli/main.js',
    'binding.gyp', 'scripts/build-native.mjs', 'scripts/build-mpi.mjs', 'scripts/node-gyp.mjs', 'resources/tokenizer/nmt_nfkc.charsmap', 'data/recipes/demo.json',
    ...listFiles('native'), ...listFiles('data/demo'), ...listFiles('data/sft'), ...listFiles('docs'), ...listFiles('web'),
  ];
  for (const f of needed) assert.ok(files.has(f), `${f} is missing from the package`);
  for (const f of files) {
    assert.doesNotMatch(f, /^(test|tools|bench|src|\.ci|dist\/(test|bench|tools))\//, `${f} should stay in the repository`);
    assert.doesNotMatch(f, /\.map$/, `${f}: source maps point at TypeScript sources the package does not ship`);
  }
  // dist/src is exactly the compiled src/: every module built, no stale module of a removed source
  const built = [...files].filter((f) => f.startsWith('dist/src/') && f.endsWith('.js')).map((f) => f.slice('dist/'.length, -3)).sort();
  const sources = listFiles('src').filter((f) => f.endsWith('.ts')).map((f) => f.slice(0, -3)).sort();
  assert.deepEqual(built, sources, 'dist/src does not match src/: run `npm run build` (it starts from an empty dist/)');
  for (const m of sources) assert.ok(files.has(`dist/${m}.d.ts`), `dist/${m}.d.ts is missing`);
  // the bundled CLI (dist/cli/main.cjs, ~0.75 MB, scripts/bundle-cli.mjs) is what bin/llama-ts.js runs
  assert.ok(files.has('dist/cli/main.cjs'), 'the bundled CLI is missing: `npm run build` writes it');
  assert.ok(packed.entryCount < 450 && packed.unpackedSize < 3.6e6, `the package grew to ${packed.entryCount} files, ${packed.unpackedSize} bytes`);
  // a registry tarball is installed without running `prepare`: dist/ must come in it, built by `prepare` at pack time
  assert.match(pkg.scripts.prepare, /\bbuild\b/);
});

test('package: installs without dev dependencies; the native build is skipped with a one-line notice', () => {
  assert.match(installLog, /llama-ts: notice: native backend not built \(LLAMA_TS_SKIP_NATIVE=1\)/);
  for (const dev of ['typescript', '@types/node', 'hyparquet-writer']) assert.ok(!existsSync(join(app, 'node_modules', dev)), `${dev} was installed`);
  assert.ok(!existsSync(join(installed, 'build')), 'a native build ran');
});

test('package: the CLI runs through npx in the installing project', () => {
  const out = run('npx', ['--no', 'llama-ts', 'info', '--preset', 'mini-15m'], app).stdout;
  const here = run(process.execPath, [join(root, 'bin', 'llama-ts.js'), 'info', '--preset', 'mini-15m'], root).stdout;
  assert.equal(out, here);
  assert.match(out, /parameters\s+24,407,712/);
  // it ran the bundle (bin/llama-ts.js takes dist/cli under node_modules, whatever times npm gave the files): the
  // same command without the compiled CLI's entry module
  const entry = join(installed, 'dist', 'src', 'cli', 'main.js');
  renameSync(entry, `${entry}.away`);
  try {
    assert.equal(run('npx', ['--no', 'llama-ts', 'info', '--preset', 'mini-15m'], app).stdout, here);
  } finally {
    renameSync(`${entry}.away`, entry);
  }
});

test('package: the demo recipe finds every file it reads inside the package', () => {
  const recipePath = join(installed, 'data', 'recipes', 'demo.json');
  const recipe = JSON.parse(readFileSync(recipePath, 'utf8')) as { sources: { path?: string | string[] }[] };
  const paths = recipe.sources.flatMap((s) => (s.path === undefined ? [] : Array.isArray(s.path) ? s.path : [s.path]));
  assert.ok(paths.length > 0);
  for (const p of paths) {
    const abs = resolve(dirname(recipePath), p);
    assert.ok(!relative(installed, abs).startsWith('..'), `${p} points outside the package`);
    assert.ok(existsSync(abs), `the demo reads ${p}, which the package lacks`);
  }
});

test('package: the library imports from an .mjs and type-checks from TypeScript', () => {
  writeFileSync(join(app, 'check.mjs'), [
    "import { makeConfig, paramCount, createBackend, Llama } from 'llama-ts';",
    "const c = makeConfig('mini-260k', { maxSeqLen: 8 });",
    "const m = new Llama(c, createBackend('ref')); m.init(1);",
    'console.log(JSON.stringify({ dim: c.dim, params: paramCount(c), data: m.params.data.length }));',
  ].join('\n'));
  const got = JSON.parse(run(process.execPath, ['check.mjs'], app).stdout);
  const c = makeConfig('mini-260k', { maxSeqLen: 8 });
  assert.deepEqual(got, { dim: c.dim, params: paramCount(c), data: paramCount(c) });

  writeFileSync(join(app, 'check.ts'), [
    "import { makeConfig, paramCount, loadAnyModel, Llama, createBackend, type LlamaConfig, type LoadedModel, type Backend } from 'llama-ts';",
    "const config: LlamaConfig = makeConfig('mini-15m');",
    'const n: number = paramCount(config);',
    "const backend: Backend = createBackend('ref');",
    'const model: Llama = new Llama(config, backend);',
    'export function load(path: string): LoadedModel { return loadAnyModel(path, backend); }',
    'console.log(n, model.config.dim);',
  ].join('\n'));
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  run(process.execPath, [tsc, '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022',
    '--types', 'node', '--typeRoots', join(root, 'node_modules', '@types'), 'check.ts'], app);
});

test('package: the installed dashboard serves its page, scripts and uPlot (offline, from node_modules) and plot writes SVG', async () => {
  const runDir = join(tmp, 'run');
  mkdirSync(runDir);
  writeFileSync(join(runDir, 'train.jsonl'), '{"step":1,"loss":5,"lr":0.0003,"grad_norm":1,"tokens_per_s":100,"mfu":0.1,"ms":{"forward":1,"loss":1,"backward":1,"optimizer":1,"total":4,"comm":0}}\n');
  run(process.execPath, [join(installed, 'bin', 'llama-ts.js'), 'plot', runDir, '--out', join(tmp, 'c.svg')], app);
  assert.match(readFileSync(join(tmp, 'c.svg'), 'utf8'), /^<svg /);
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, [join(installed, 'bin', 'llama-ts.js'), 'dashboard', runDir, '--port', '0'], { cwd: app, stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    let err = '';
    const url = await new Promise<string>((ok, fail) => {
      child.stderr.on('data', (d) => {
        err += d;
        const m = /dashboard: (\S+)/.exec(err);
        if (m) ok(m[1]);
      });
      child.on('exit', () => fail(new Error(err)));
    });
    const html = await (await fetch(url)).text();
    const assets = [...html.matchAll(/(?:href|src)="(\/static\/[^"]+)"/g)].map((m) => m[1]);
    assets.push('/static/uPlot.esm.js', '/static/charts.js', '/static/series.js', '/static/format.js');
    for (const a of assets) assert.equal((await fetch(new URL(a, url))).status, 200, a);
  } finally {
    child.kill('SIGINT');
  }
});
