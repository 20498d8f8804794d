import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const bin = fileURLToPath(new URL('../../bin/llama-ts.js', import.meta.url));
const fx = (f: string) => fileURLToPath(new URL(`../../test/fixtures/tokenizer/${f}`, import.meta.url));
const run = (args: string[], input?: string | Buffer) => spawnSync(process.execPath, [bin, 'tokenizer', ...args], { input: typeof input === 'string' ? Buffer.from(input) : input });

test('cli: encode/decode follow spm_encode (ids and pieces per line, stdin default)', () => {
  const heldout = readFileSync(fx('heldout.txt'));
  const r = run(['encode', `--model=${fx('spm-bpe2k.model')}`], heldout);
  assert.equal(r.status, 0, r.stderr.toString());
  assert.equal(r.stdout.toString(), readFileSync(fx('spm-bpe2k.heldout.ids'), 'utf8'));
  const p = run(['encode', '--model', fx('spm-bpe2k.model'), '--input', fx('heldout.txt'), '--output_format', 'piece']);
  assert.equal(p.stdout.toString(), readFileSync(fx('spm-bpe2k.heldout.pieces'), 'utf8'));
  const d = run(['decode', `--model=${fx('llama-spm.model')}`], '1 15043 3186 2\n\n13 29871 13\n');
  assert.equal(d.stdout.toString(), 'Hello world\n\n\n \n\n');
  const e = run(['encode', `--model=${fx('llama-spm.model')}`, '--extra_options=bos:eos'], 'Hello world\n');
  assert.equal(e.stdout.toString(), '1 15043 3186 2\n');
});

test('cli: train writes a .model and .vocab; errors are one line with exit 2', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tokcli-'));
  const input = join(dir, 'in.txt');
  writeFileSync(input, 'the cat sat on the mat\nthe dog ate 42 hats\n'.repeat(50));
  const r = run(['train', `--input=${input}`, `--model_prefix=${join(dir, 'm')}`, '--vocab_size=35', '--normalization_rule_name=identity', '--quiet']);
  assert.equal(r.status, 0, r.stderr.toString());
  assert.equal(readFileSync(join(dir, 'm.vocab'), 'utf8').split('\n').length, 36);
  const enc = run(['encode', `--model=${join(dir, 'm.model')}`], 'the cat\n');
  const dec = run(['decode', `--model=${join(dir, 'm.model')}`], enc.stdout);
  assert.equal(dec.stdout.toString(), 'the cat\n');
  for (const args of [
    ['train', `--input=${input}`, `--model_prefix=${join(dir, 'x')}`, '--vocab_size=100000', '--quiet'],
    ['train', `--input=${join(dir, 'missing.txt')}`, `--model_prefix=${join(dir, 'x')}`, '--vocab_size=100'],
    ['train', `--input=${input}`, `--model_prefix=${join(dir, 'x')}`, '--vocab_size=100', '--model_type=unigram'],
    ['encode', `--model=${input}`],
    ['decode', `--model=${fx('llama-spm.model')}`],
    ['frobnicate'],
  ]) {
    const x = run(args, 'abc 99999\n');
    assert.equal(x.status, 2, args.join(' ') + ': ' + x.stderr.toString());
    const err = x.stderr.toString().trim();
    assert.match(err, /^llama-ts: error: /);
    assert.equal(err.split('\n').length, 1, err);
  }
});
