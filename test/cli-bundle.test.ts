/**
 * The bundled CLI (scripts/bundle-cli.mjs → dist/cli/main.cjs, what bin/llama-ts.js runs after `npm run build`) behaves
 * as the compiled modules do: same output on help, info, a generate with mapped weights, a tokenizer training (a
 * resource file found through import.meta.url), data preparation on worker threads, a user error; the bin chooses it
 * only when it is not older than the compiled CLI, and compiles it from a per-command V8 code cache that a stale,
 * corrupt or unwritable cache only slows down.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { root } from './helpers/cli.js';
import { makeConfig } from '../src/model/config.js';
import { saveModelAs } from '../src/io/formats.js';
import { peakedModel } from './helpers/models.js';
import { randomDoc } from './helpers/data.js';
import { Rng } from '../src/util/rng.js';

// built here, beside dist/cli (same depth under dist/, so its paths resolve alike), from this build's dist/src
const out = mkdtempSync(join(root, 'dist', 'cli-test-'));
const tmp = mkdtempSync(join(tmpdir(), 'llama-ts-bundle-'));
after(() => {
  rmSync(out, { recursive: true, force: true });
  rmSync(tmp, { recursive: true, force: true });
});

const built = spawnSync(process.execPath, [join(root, 'scripts', 'bundle-cli.mjs'), '--out', out], { encoding: 'utf8' });
const bundled = pathToFileURL(join(out, 'main.cjs')).href;
const compiled = pathToFileURL(join(root, 'dist', 'src', 'cli', 'main.js')).href;

/** Runs `main(args)` of one entry module in a fresh process (through a file: workers inherit node's flags). */
const runner = join(tmp, 'run.mjs');
writeFileSync(runner, 'const { main } = await import(process.argv[2]);\nprocess.exitCode = await main(process.argv.slice(3));\n');
function run(entry: string, args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [runner, entry, ...args], {
    encoding: 'utf8', cwd: tmp, env: { ...process.env, ...env },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Both entries on the same arguments: same exit code and stdout; stderr compared by the caller (speeds differ). */
function same(args: string[], env: Record<string, string> = {}) {
  const a = run(bundled, args, env);
  const b = run(compiled, args, env);
  assert.equal(a.code, b.code, `${args.join(' ')}: exit ${a.code} bundled, ${b.code} compiled; ${a.stderr}`);
  assert.equal(a.stdout, b.stdout, args.join(' '));
  return { bundled: a, compiled: b };
}

test('bundle-cli: one CommonJS file whose commands are initialised only when they run, none of them a stub', () => {
  assert.equal(built.status, 0, built.stderr);
  assert.match(built.stdout, /bundle-cli: \d+ modules into 1 files/);
  assert.deepEqual(readdirSync(out), ['main.cjs']);
  const main = readFileSync(join(out, 'main.cjs'), 'utf8');
  // each command's table entry runs its module's initialiser (and so its imports') on load, not at start
  for (const c of ['generate', 'train', 'info', 'serve']) {
    const load = new RegExp(String.raw`\b${c}: \{ summary: "[^"]+", load: async \(\) => \(await Promise\.resolve\(\)\.then\(\(\) => \(init_\w+\(\), ${c}\d*_exports\)\)\)\.command \}`);
    assert.match(main, load, c);
  }
  assert.ok(main.length > 300_000, `main.cjs is ${main.length} bytes`);
  // a script compiled from a V8 code cache has no dynamic-import callback (Node 20): import() must have become require()
  assert.doesNotMatch(main, /\bimport\(/);
});

test('bundle-cli: --help, a command\'s --help, info and a user error print what the compiled CLI prints', () => {
  const help = same(['--help']);
  assert.match(help.bundled.stdout, /^usage: llama-ts <command>/);
  const evalHelp = same(['eval', '--help']).bundled.stdout;
  assert.match(evalHelp, /'bundled' for all of them \(\w+/, 'the bundled task names (data/tasks, found from import.meta.url)');
  assert.match(same(['info', '--preset', 'mini-15m']).bundled.stdout, /parameters\s+24,407,712/);
  const err = same(['generate', '--model', join(tmp, 'missing.bin'), '--prompt', 'x']);
  assert.equal(err.bundled.code, 2);
  assert.equal(err.bundled.stderr, err.compiled.stderr);
  assert.match(err.bundled.stderr, /^llama-ts: error: [^\n]+\n$/);
});

test('bundle-cli: generate on mapped weights: the same text, the native addon found from the bundle', () => {
  const config = makeConfig({ dim: 32, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 259, multipleOf: 16, maxSeqLen: 48 });
  const path = join(tmp, 'l2c', 'model.bin');
  saveModelAs('llama2c', path, peakedModel(config, 7), null);
  const g = same(['generate', '--model', path, '--prompt', 'Hi', '-n', '12', '--temperature', '0', '--ignore-eos', '--verbose']);
  assert.match(g.bundled.stdout, /^Hi.+\n$/s);
  const weights = (s: string) => s.split('\n').filter((l) => l.startsWith('llama-ts: weights'));
  assert.deepEqual(weights(g.bundled.stderr), weights(g.compiled.stderr));
  assert.ok(weights(g.bundled.stderr).length > 0, g.bundled.stderr);
});

test('bundle-cli: data prepare on two tokenizer worker threads (a worker file named from import.meta.url) writes the same shards', () => {
  mkdirSync(join(tmp, 'raw'));
  const rng = new Rng(3);
  const text = Array.from({ length: 40 }, (_, i) => `document ${i}.\n${randomDoc(rng)}`).join('\n\n');
  writeFileSync(join(tmp, 'raw', 'a.txt'), text + '\n');
  const recipe = join(tmp, 'recipe.json');
  writeFileSync(recipe, JSON.stringify({ name: 't', seed: 1, total_tokens: 1e5, held_out_fraction: 0.1, shard_tokens: 1024, sources: [{ name: 'a', format: 'text', path: 'raw/a.txt', separator: 'blank-line', weight: 1 }] }));
  const shards: Buffer[][] = [];
  for (const [entry, name] of [[bundled, 'pb'], [compiled, 'pc']]) {
    const r = run(entry, ['data', 'prepare', '--recipe', recipe, '--out', join(tmp, name), '--workers', '2', '--quiet']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /2 tokenizer workers/);
    const files = readdirSync(join(tmp, name, 'a')).filter((f) => f.endsWith('.bin')).sort();
    assert.ok(files.length > 0);
    shards.push(files.map((f) => readFileSync(join(tmp, name, 'a', f))));
  }
  assert.deepEqual(shards[0], shards[1]);
});

test('bundle-cli: tokenizer train reads its normalisation rule (resources/) and writes the same model', () => {
  const input = join(tmp, 'text.txt');
  writeFileSync(input, 'the quick brown fox jumps over the lazy dog\n'.repeat(40) + 'Ｆｕｌｌｗｉｄｔｈ ﬁ ligature\n');
  const files: Buffer[] = [];
  for (const [entry, name] of [[bundled, 'b'], [compiled, 'c']]) {
    const r = run(entry, ['tokenizer', 'train', `--input=${input}`, `--model_prefix=${join(tmp, name)}`, '--vocab_size=60', '--quiet']);
    assert.equal(r.code, 0, r.stderr);
    files.push(readFileSync(join(tmp, `${name}.model`)));
  }
  assert.ok(files[0].equals(files[1]));
});

test('bin/llama-ts.js runs dist/cli: always under node_modules, in a checkout while not older than the compiled CLI', () => {
  /** A package folder at `at` with the real bin and two stub entries that say which ran; returns a runner. */
  const layout = (at: string) => {
    for (const d of ['bin', 'dist/cli', 'dist/src/cli']) mkdirSync(join(at, d), { recursive: true });
    copyFileSync(join(root, 'bin', 'llama-ts.js'), join(at, 'bin', 'llama-ts.js'));
    writeFileSync(join(at, 'dist/cli/main.cjs'), `exports.main = async (argv) => { console.log('bundle', argv.join(' ')); return 3; };\n`);
    writeFileSync(join(at, 'dist/src/cli/main.js'), `export async function main(argv) { console.log('compiled', argv.join(' ')); return 3; }\n`);
    return (when: { bundle: number; compiled: number }, args = ['info', '-x']) => {
      if (existsSync(join(at, 'dist/cli'))) utimesSync(join(at, 'dist/cli/main.cjs'), when.bundle, when.bundle);
      utimesSync(join(at, 'dist/src/cli/main.js'), when.compiled, when.compiled);
      const r = spawnSync(process.execPath, [join(at, 'bin', 'llama-ts.js'), ...args], { encoding: 'utf8', env: { ...process.env, LLAMA_TS_CACHE_DIR: join(at, 'cache') } });
      assert.equal(r.status, 3, r.stderr);
      return r.stdout;
    };
  };
  const checkout = layout(join(tmp, 'checkout'));
  assert.equal(checkout({ bundle: 2000, compiled: 1000 }), 'bundle info -x\n');
  assert.equal(checkout({ bundle: 1000, compiled: 1000 }), 'bundle info -x\n');
  assert.equal(checkout({ bundle: 1000, compiled: 2000 }), 'compiled info -x\n'); // tsc ran after the bundle was built
  // the bare usage needs only the command table: the compiled main (two small modules) loads faster than the bundle
  assert.equal(checkout({ bundle: 2000, compiled: 1000 }, ['--help']), 'compiled --help\n');
  assert.equal(checkout({ bundle: 2000, compiled: 1000 }, []), 'compiled \n');
  // npm extracts a package's files in tarball order with the time of extraction: dist/src is written after dist/cli
  const installed = layout(join(tmp, 'app', 'node_modules', 'llama-ts'));
  assert.equal(installed({ bundle: 1000, compiled: 2000 }), 'bundle info -x\n');
  rmSync(join(tmp, 'checkout', 'dist', 'cli'), { recursive: true });
  assert.equal(checkout({ bundle: 0, compiled: 1000 }), 'compiled info -x\n'); // no bundle (built without esbuild)
});

test('bin/llama-ts.js code cache: written by a clean run, then used as is; a corrupt, stale or unwritable one only costs a compile', () => {
  const cache = join(tmp, 'code-cache');
  const bin = join(root, 'bin', 'llama-ts.js');
  const stale = statSync(join(root, 'dist', 'cli', 'main.cjs')).mtimeMs < statSync(join(root, 'dist', 'src', 'cli', 'main.js')).mtimeMs;
  assert.ok(!stale, 'dist/cli/main.cjs is older than dist/src (the bin would not run it): npm run build');
  const cli = (args: string[], env: Record<string, string> = {}) => {
    const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, LLAMA_TS_CACHE_DIR: cache, ...env } });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const files = () => (existsSync(cache) ? readdirSync(cache).flatMap((d) => readdirSync(join(cache, d)).map((f) => join(cache, d, f))) : []);
  const info = ['info', '--preset', 'mini-15m'];
  const first = cli(info);
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, /parameters\s+24,407,712/);
  const written = files();
  assert.equal(written.length, 1, written.join(' '));
  assert.match(written[0], new RegExp(String.raw`code-${process.version.replaceAll('.', '\\.')}-${process.arch}[/\\]info-\d+-\d+\.bin$`));
  const bytes = readFileSync(written[0]);
  assert.ok(bytes.length > 10_000, `a ${bytes.length}-byte cache`);
  // V8 accepts it: the next run leaves it alone (it is rewritten only when missing or refused)
  utimesSync(written[0], 1000, 1000);
  assert.equal(cli(info).stdout, first.stdout);
  assert.equal(statSync(written[0]).mtimeMs, 1000 * 1000);
  // refused (corrupt): the run is the same and writes a good one back
  writeFileSync(written[0], Buffer.alloc(4096, 7));
  assert.equal(cli(info).stdout, first.stdout);
  assert.ok(readFileSync(written[0]).equals(bytes) || readFileSync(written[0]).length > 10_000);
  // a failed command writes none; another command gets its own; off when LLAMA_TS_CODE_CACHE=0
  assert.equal(cli(['info', '--preset', 'no-such']).code, 2);
  assert.equal(files().length, 1);
  assert.equal(cli(['info', '--preset', 'mini-42m'], { LLAMA_TS_CODE_CACHE: '0' }).code, 0);
  assert.equal(files().length, 1);
  assert.equal(cli(['plan', '--help']).code, 0);
  assert.equal(files().length, 2);
  // a cache directory that cannot be made (a file is in its place): the command runs as without a cache
  const blocked = join(tmp, 'not-a-dir');
  writeFileSync(blocked, 'x');
  const r = cli(info, { LLAMA_TS_CACHE_DIR: blocked });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, first.stdout);
  assert.equal(r.stderr, '');
});
