/**
 * Issue 17, the training / CLI / file-writing side: each test reproduces one of the defects the adversarial probe
 * found (items 4, 6, 10, 11, 12, 13, 14) on small generated inputs. (The Ctrl-C test is in train-loop.test.ts.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, linkSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bin, failsWithOneLine, root, runCli } from './helpers/cli.js';
import { makePrepared, paragraphCorpus, tmp } from './helpers/data.js';
import { nativeAvailable } from '../src/kernels/native.js';
import { maxThreads } from '../src/util/hardware.js';
import { prepareData } from '../src/data/prepare.js';
import { parseRecipe } from '../src/data/recipe.js';
import { writeDirAtomic } from '../src/util/fsutil.js';
import { cutLog } from '../src/training/metrics.js';
import { UserError } from '../src/util/errors.js';

/** A tiny model on the reference backend: a step takes milliseconds and the numbers are the same on every machine. */
const TINY = ['--dim', '16', '--layers', '1', '--heads', '2', '--multiple-of', '8', '--seq', '16', '--batch', '2', '--backend', 'ref', '--quiet'];

function cli(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', cwd: root, env: { ...process.env, ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function oneLineError(r: { code: number | null; stdout: string; stderr: string }, re: RegExp): void {
  assert.equal(r.code, 2, r.stderr);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /^llama-ts: error: /);
  assert.match(lines[0], re);
}

function trained(out: string, extra: string[] = [], data = paragraphCorpus()): string {
  const r = cli(['train', ...TINY, '--data', data, '--out', out, '--steps', '8', '--eval-every', '4', '--eval-batches', '2', '--ckpt-every', '0', ...extra]);
  assert.equal(r.code, 0, r.stderr);
  return out;
}

/** train.jsonl without the wall-clock fields: what two runs of the same settings must agree on. */
function logOf(run: string): unknown[] {
  return readFileSync(join(run, 'train.jsonl'), 'utf8').trimEnd().split('\n').map((l) => {
    const { tokens_per_s: _t, mfu: _m, ms: _ms, ...rest } = JSON.parse(l) as Record<string, unknown>;
    return rest;
  });
}

function editJson(path: string, edit: (o: Record<string, any>) => void): void {
  const o = JSON.parse(readFileSync(path, 'utf8'));
  edit(o);
  writeFileSync(path, JSON.stringify(o));
}

function stateJson(run: string): string {
  const dir = readFileSync(join(run, 'checkpoints', 'latest'), 'utf8').trim();
  return join(run, 'checkpoints', dir, 'state.json');
}

// ---- item 4: thread and worker counts are bounded

test('4: LLAMA_TS_THREADS above the bound is clamped with a one-line notice', { skip: !nativeAvailable() && 'native addon not built' }, () => {
  const code = "import('./dist/src/kernels/native.js').then((m) => console.log(m.createNativeBackend().threads()))";
  const r = spawnSync(process.execPath, ['-e', code], { cwd: root, encoding: 'utf8', env: { ...process.env, LLAMA_TS_THREADS: '400' } });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(Number(r.stdout.trim()), Math.min(400, maxThreads()));
  if (400 > maxThreads()) assert.match(r.stderr, /^llama-ts: notice: LLAMA_TS_THREADS=400 is more than this machine can use; using \d+ threads/);
});

test('4: bench train --threads and data prepare --workers beyond the machine are refused with one line', async () => {
  failsWithOneLine(['bench', 'train', '--preset', 'mini-260k', '--threads', '5000'], /--threads 5000 is more than this machine can use: at most \d+/);
  const dir = tmp();
  writeFileSync(join(dir, 'a.txt'), 'one document\n\nanother document\n');
  const recipe = parseRecipe({ name: 't', seed: 1, total_tokens: 1000, sources: [{ name: 'a', format: 'text', path: join(dir, 'a.txt'), weight: 1 }] }, dir);
  await assert.rejects(prepareData({ recipe, out: join(dir, 'out'), quiet: true, workers: 200 }), (e: Error) => e instanceof UserError && /--workers 200 is more than/.test(e.message));
  assert.ok(!existsSync(join(dir, 'out')));
});

// ---- item 6: one line, naming the file and field, instead of a stack trace

test('6: impossible sizes on the command line are refused before anything is allocated', () => {
  const data = paragraphCorpus();
  failsWithOneLine(['train', '--preset', 'mini-260k', '--batch', '1e9', '--data', data, '--out', join(tmp(), 'r')], /batch 1000000000 × seq 256\) needs ~.* GiB/);
  failsWithOneLine(['train', '--preset', 'mini-260k', '--dim', '1e6', '--data', data, '--out', join(tmp(), 'r')], /needs ~.* GiB/);
  failsWithOneLine(['train', '--preset', 'mini-260k', '--seq', '5000000', '--data', data, '--out', join(tmp(), 'r')], /maxSeqLen 5000000 exceeds the supported/);
});

test('6: a checkpoint with a huge maxSeqLen, batch or a bad tokenizer.file gives one line', () => {
  const run = trained(join(tmp(), 'r'));
  const state = stateJson(run);
  const original = readFileSync(state, 'utf8');
  editJson(state, (o) => (o.config.maxSeqLen = 2 ** 32 + 7));
  failsWithOneLine(['train', '--resume', '--out', run, '--backend', 'ref'], /maxSeqLen 4294967303 exceeds the supported/);
  failsWithOneLine(['generate', '--model', run, '--prompt', 'a', '--backend', 'ref'], /maxSeqLen 4294967303 exceeds/);
  writeFileSync(state, original);
  editJson(state, (o) => (o.hyper.batch = 2 ** 53));
  failsWithOneLine(['train', '--resume', '--out', run, '--steps', '9', '--backend', 'ref'], /state\.json': the saved settings are not usable: .*needs at least .* of memory/);
  writeFileSync(state, original);
  editJson(state, (o) => (o.tokenizer = { kind: 'sentencepiece', file: 0 }));
  failsWithOneLine(['generate', '--model', run, '--prompt', 'a', '--backend', 'ref'], /state\.json': 'tokenizer\.file' must be a file name beside it, got 0/);
});

test('6: an HF config with max_position_embeddings 2**63 gives one line', () => {
  const run = trained(join(tmp(), 'r'));
  const hf = join(tmp(), 'hf');
  assert.equal(cli(['convert', '--from', run, '--to', hf, '--to-format', 'hf']).code, 0);
  editJson(join(hf, 'config.json'), (o) => (o.max_position_embeddings = 2 ** 63));
  failsWithOneLine(['generate', '--model', hf, '--prompt', 'a', '--backend', 'ref'], /maxSeqLen 9223372036854776000 exceeds the supported/);
});

test('6: a manifest with a malformed field, and shards with tokens outside the vocabulary, give one line', async () => {
  const data = await makePrepared([{ name: 'a', docs: 60, weight: 1 }], { heldOutFraction: 0.2 });
  const manifest = join(data, 'manifest.json');
  const original = readFileSync(manifest, 'utf8');
  editJson(manifest, (m) => (m.sources[0].heldOut = 0));
  failsWithOneLine(['data', 'stats', data], /manifest\.json': sources\[0\]\.heldOut must be an object, got 0/);
  failsWithOneLine(['train', ...TINY, '--data', data, '--out', join(tmp(), 'r'), '--steps', '2'], /sources\[0\]\.heldOut must be an object/);
  writeFileSync(manifest, original);
  // every held-out token overwritten with 0xFFFF: training names the shard
  for (const f of readdirSync(join(data, 'a')).filter((n) => n.startsWith('heldout'))) {
    const p = join(data, 'a', f);
    const b = readFileSync(p);
    const docs = Number(b.readBigUInt64LE(24));
    b.fill(0xff, 64 + 8 * (docs + 1));
    writeFileSync(p, b);
  }
  failsWithOneLine(['train', ...TINY, '--data', data, '--out', join(tmp(), 'r'), '--steps', '2', '--eval-batches', '4'], /shard '.*heldout-\d+\.bin' is corrupt: token 65535 .* outside its vocabulary of 259/);
});

// ---- item 10: a resumed run is the uninterrupted one, evaluations included

test('10: resume evaluates with the checkpoint seed and seq, not the command line defaults', () => {
  const data = paragraphCorpus();
  const straight = trained(join(tmp(), 'a'), ['--seed', '7'], data);
  const split = trained(join(tmp(), 'b'), ['--seed', '7', '--stop-at', '4'], data);
  const r = cli(['train', '--resume', '--out', split, '--backend', 'ref', '--quiet', '--data', data]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(logOf(split), logOf(straight));
});

// ---- item 12: input that was silently accepted

test('12: --resume with a changed setting is refused; repeating the saved value is fine', () => {
  const data = paragraphCorpus();
  const run = trained(join(tmp(), 'r'), ['--stop-at', '4'], data);
  failsWithOneLine(['train', '--resume', '--out', run, '--batch', '7', '--data', data], /--batch 7 differs from the checkpoint's 2: a resumed run keeps its saved settings \(only --steps may change\)/);
  const r = cli(['train', '--resume', '--out', run, '--batch', '2', '--steps', '10', '--data', data, '--backend', 'ref', '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /trained 10 steps/);
});

test('12: LLAMA_TS_THREADS that is not a positive integer is refused with one line', { skip: !nativeAvailable() && 'native addon not built' }, () => {
  const data = paragraphCorpus();
  for (const v of ['0', '-1', 'abc', '2.5']) {
    oneLineError(cli(['train', ...TINY.filter((x) => x !== 'ref' && x !== '--backend'), '--data', data, '--out', join(tmp(), 'r'), '--steps', '1'], { LLAMA_TS_THREADS: v }),
      new RegExp(`LLAMA_TS_THREADS must be a positive integer .*got "${v.replace('.', '\\.')}"`));
  }
});

test('12: generate without a prompt or with empty --ids is refused', () => {
  const run = trained(join(tmp(), 'r'));
  failsWithOneLine(['generate', '--model', run, '--backend', 'ref'], /give a prompt: --prompt TEXT/);
  failsWithOneLine(['generate', '--model', run, '--ids', '', '--backend', 'ref'], /--ids is empty/);
  failsWithOneLine(['generate', '--model', run, '--ids', ' , ', '--backend', 'ref'], /--ids is empty/);
  // an explicit empty prompt still starts from BOS
  assert.equal(cli(['generate', '--model', run, '--prompt', '', '-n', '2', '--backend', 'ref']).code, 0);
});

test('12: tokenizer train --model_prefix ending in a directory separator is refused (no hidden adir/.model)', () => {
  const dir = tmp();
  const input = join(dir, 'in.txt');
  writeFileSync(input, 'hello world\n'.repeat(50));
  mkdirSync(join(dir, 'adir'));
  failsWithOneLine(['tokenizer', 'train', `--input=${input}`, `--model_prefix=${join(dir, 'adir')}/`, '--vocab_size=40'], /--model_prefix must name the files to write/);
  assert.deepEqual(readdirSync(join(dir, 'adir')), []);
});

// ---- item 13: files are written to a temporary sibling and renamed

test('13: tokenizer train replaces .model and .vocab by rename, never rewriting the old file in place', () => {
  const dir = tmp();
  const input = join(dir, 'in.txt');
  writeFileSync(input, 'the quick brown fox jumps over the lazy dog\n'.repeat(40));
  const prefix = join(dir, 'm');
  assert.equal(runCli(['tokenizer', 'train', `--input=${input}`, `--model_prefix=${prefix}`, '--vocab_size=50', '--quiet']).code, 0);
  const before = readFileSync(`${prefix}.model`);
  linkSync(`${prefix}.model`, join(dir, 'old.model')); // a second name for the old file's inode
  linkSync(`${prefix}.vocab`, join(dir, 'old.vocab'));
  const vocabBefore = readFileSync(`${prefix}.vocab`);
  assert.equal(runCli(['tokenizer', 'train', `--input=${input}`, `--model_prefix=${prefix}`, '--vocab_size=60', '--quiet']).code, 0);
  assert.deepEqual(readFileSync(join(dir, 'old.model')), before, 'the old model was rewritten in place');
  assert.deepEqual(readFileSync(join(dir, 'old.vocab')), vocabBefore, 'the old vocab was rewritten in place');
  assert.notDeepEqual(readFileSync(`${prefix}.model`), before);
  assert.deepEqual(readdirSync(dir).filter((n) => n.includes('.tmp-')), []);
});

test('13: a directory output that fails while being written leaves nothing that looks like output', () => {
  const dir = tmp();
  const out = join(dir, 'hf');
  assert.throws(() => writeDirAtomic(out, (d) => {
    writeFileSync(join(d, 'model.safetensors'), 'partial');
    throw new Error('ENOSPC');
  }), /ENOSPC/);
  assert.deepEqual(readdirSync(dir), []);
  // an existing output keeps its files until the new ones are complete
  mkdirSync(out);
  writeFileSync(join(out, 'config.json'), 'old');
  assert.throws(() => writeDirAtomic(out, () => {
    throw new Error('ENOSPC');
  }));
  assert.equal(readFileSync(join(out, 'config.json'), 'utf8'), 'old');
  writeDirAtomic(out, (d) => writeFileSync(join(d, 'config.json'), 'new'));
  assert.equal(readFileSync(join(out, 'config.json'), 'utf8'), 'new');
  assert.deepEqual(readdirSync(dir), ['hf']);
  // the CLI's convert to a new directory leaves only the complete directory
  const run = trained(join(dir, 'r'));
  assert.equal(cli(['convert', '--from', run, '--to', join(dir, 'out-ckpt'), '--to-format', 'ckpt']).code, 0);
  assert.deepEqual(readdirSync(dir).sort(), ['hf', 'out-ckpt', 'r']);
  assert.ok(existsSync(join(dir, 'out-ckpt', 'state.json')));
});

// ---- item 14: train.jsonl always equals what one uninterrupted run would have written

test('14: resume cuts train.jsonl back to the checkpoint (dead lines, torn line); a fresh run starts a new log', () => {
  const data = paragraphCorpus();
  const straight = logOf(trained(join(tmp(), 'a'), [], data));
  // a run that checkpointed at step 4, wrote steps 5 and 6, then died mid-line on a full disk
  const b = trained(join(tmp(), 'b'), ['--stop-at', '4'], data);
  const lines = readFileSync(join(trained(join(tmp(), 'c'), ['--stop-at', '6'], data), 'train.jsonl'), 'utf8').trimEnd().split('\n');
  appendFileSync(join(b, 'train.jsonl'), lines.filter((l) => [5, 6].includes(JSON.parse(l).step)).join('\n') + '\n{"step":7,"loss":5.5');
  const r = cli(['train', '--resume', '--out', b, '--backend', 'ref', '--quiet', '--data', data]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(logOf(b), straight);
  // a run killed before its first checkpoint left lines behind: the fresh run replaces them
  const d = join(tmp(), 'd');
  mkdirSync(d);
  writeFileSync(join(d, 'train.jsonl'), '{"step":1,"loss":9}\n{"step":2,"lo');
  assert.deepEqual(logOf(trained(d, [], data)), straight);
});

test('14: cutLog keeps complete records up to the step, in order', () => {
  const p = join(tmp(), 'train.jsonl');
  writeFileSync(p, '{"step":0,"eval_loss":5}\n{"step":1,"loss":4}\n{"step":2,"loss":3}\n{"step":2,"eval_loss":3.5}\n{"step":3,"loss":2}\n{"st');
  cutLog(p, 2);
  assert.equal(readFileSync(p, 'utf8'), '{"step":0,"eval_loss":5}\n{"step":1,"loss":4}\n{"step":2,"loss":3}\n{"step":2,"eval_loss":3.5}\n');
  cutLog(p, 0);
  assert.equal(readFileSync(p, 'utf8'), '');
});
