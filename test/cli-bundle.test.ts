/**
 * The bundled CLI (scripts/bundle-cli.mjs → dist/cli/, what bin/llama-ts.js runs after `npm run build`) behaves as the
 * compiled modules do: same output on help, info, a generate with mapped weights, a tokenizer training (a resource
 * file found through import.meta.url), data preparation on worker threads, a user error; and the bin chooses it only
 * when it is not older than the compiled CLI.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
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
const bundled = pathToFileURL(join(out, 'main.js')).href;
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

test('bundle-cli: one entry and per-command chunks (a command loads only its own), none of them a stub', () => {
  assert.equal(built.status, 0, built.stderr);
  assert.match(built.stdout, /bundle-cli: \d+ modules into \d+ files/);
  const files = readdirSync(out);
  assert.ok(files.includes('main.js'));
  for (const c of ['generate', 'train', 'info', 'serve']) assert.ok(files.some((f) => f.startsWith(`${c}-`) && f.endsWith('.js')), `no chunk for ${c}`);
  // main.js holds the command table, not the commands: `--help` reads one small module
  const main = readFileSync(join(out, 'main.js'), 'utf8');
  assert.match(main, /import\("\.\/generate-[\w]+\.js"\)/);
  assert.ok(main.length < 20_000, `main.js is ${main.length} bytes`);
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
    const entry = (what: string) => `export async function main(argv) { console.log('${what}', argv.join(' ')); return 3; }\n`;
    writeFileSync(join(at, 'dist/cli/main.js'), entry('bundle'));
    writeFileSync(join(at, 'dist/src/cli/main.js'), entry('compiled'));
    return (when: { bundle: number; compiled: number }) => {
      if (existsSync(join(at, 'dist/cli'))) utimesSync(join(at, 'dist/cli/main.js'), when.bundle, when.bundle);
      utimesSync(join(at, 'dist/src/cli/main.js'), when.compiled, when.compiled);
      const r = spawnSync(process.execPath, [join(at, 'bin', 'llama-ts.js'), 'info', '-x'], { encoding: 'utf8' });
      assert.equal(r.status, 3, r.stderr);
      return r.stdout;
    };
  };
  const checkout = layout(join(tmp, 'checkout'));
  assert.equal(checkout({ bundle: 2000, compiled: 1000 }), 'bundle info -x\n');
  assert.equal(checkout({ bundle: 1000, compiled: 1000 }), 'bundle info -x\n');
  assert.equal(checkout({ bundle: 1000, compiled: 2000 }), 'compiled info -x\n'); // tsc ran after the bundle was built
  // npm extracts a package's files in tarball order with the time of extraction: dist/src is written after dist/cli
  const installed = layout(join(tmp, 'app', 'node_modules', 'llama-ts'));
  assert.equal(installed({ bundle: 1000, compiled: 2000 }), 'bundle info -x\n');
  rmSync(join(tmp, 'checkout', 'dist', 'cli'), { recursive: true });
  assert.equal(checkout({ bundle: 0, compiled: 1000 }), 'compiled info -x\n'); // no bundle (built without esbuild)
});
