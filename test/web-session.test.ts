/**
 * Exact resume across places: the page's training run (browser/session.ts, here on the Node wasm backend) and
 * `llama-ts train` hand a run to each other through checkpoints and continue it bit for bit — a page's single-file
 * checkpoint resumed by `train --resume`, a `train` checkpoint directory resumed by the session — the same losses as
 * one uninterrupted run (same weights, AdamW moments, step and data order from the same text).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadWasm } from '../src/kernels/wasm-node.js';
import { TrainingSession } from '../src/browser/session.js';
import { Rng } from '../src/util/rng.js';
import type { LlamaConfig } from '../src/model/config.js';
import { writeLlamaGguf } from '../src/io/gguf-llama.js';
import { byteVocab, TokenType } from '../src/tokenizer/vocab.js';
import { UserError } from '../src/util/errors.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const loaded = loadWasm();
const skip: false | string = loaded.backend ? false : `wasm backend unavailable: ${loaded.error}`;

/** Some English-like text: words from a small list, in paragraphs (documents). */
function text(): string {
  const words = 'the of and to in a is that for it as was with be by on not he I this are or his from at which but have an they you were her she there'.split(' ');
  const rng = new Rng(5);
  const paras: string[] = [];
  for (let p = 0; p < 60; p++) paras.push(Array.from({ length: 80 }, () => words[rng.int(words.length)]).join(' ') + '.');
  return paras.join('\n\n');
}

const MODEL: Partial<LlamaConfig> = { dim: 32, nLayers: 1, nHeads: 2, nKvHeads: 1, multipleOf: 16, maxSeqLen: 32 };
const HYPER = { batch: 2, steps: 10, warmup: 2, evalBatches: 1 };
const cli = (args: string[]) => execFileSync(process.execPath, [join(root, 'bin/llama-ts.js'), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const losses = (runDir: string) => readFileSync(join(runDir, 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step?: number; loss?: number }).filter((r) => r.loss !== undefined);

test('a page checkpoint continues under `llama-ts train --resume`, and a `train` checkpoint continues in the page, bit for bit', { skip }, () => {
  const be = loaded.backend!;
  const tmp = mkdtempSync(join(tmpdir(), 'lt-session-'));
  try {
    const data = join(tmp, 'text.txt');
    writeFileSync(data, text());
    const straight = TrainingSession.fresh(be, text(), 'text.txt', MODEL, HYPER);
    const want = Array.from({ length: 8 }, () => straight.trainOne().loss);

    // page → Node: 4 steps in the session, its single file as the run's latest checkpoint, 4 more by the CLI
    const page = TrainingSession.fresh(be, text(), 'text.txt', MODEL, HYPER);
    for (let i = 0; i < 4; i++) assert.equal(page.trainOne().loss, want[i]);
    const run = join(tmp, 'from-page');
    mkdirSync(join(run, 'checkpoints'), { recursive: true });
    writeFileSync(join(run, 'checkpoints', 'step-00000004.safetensors'), page.save());
    writeFileSync(join(run, 'checkpoints', 'latest'), 'step-00000004\n');
    cli(['train', '--data', data, '--out', run, '--resume', '--backend', 'wasm', '--stop-at', '8', '--quiet']);
    assert.deepEqual(losses(run).map((r) => r.loss), want.slice(4, 8), 'the CLI continues the page run exactly');

    // Node → page: the CLI's first 4 steps (the same settings, given as flags), its checkpoint directory into the session
    const run2 = join(tmp, 'from-cli');
    cli(['train', '--data', data, '--out', run2, '--backend', 'wasm', '--dim', '32', '--layers', '1', '--heads', '2', '--kv-heads', '1', '--multiple-of', '16', '--seq', '32',
      '--batch', '2', '--steps', '10', '--warmup', '2', '--eval-batches', '1', '--stop-at', '4', '--quiet']);
    assert.deepEqual(losses(run2).map((r) => r.loss), want.slice(0, 4), 'the CLI run starts as the page run');
    const dir = join(run2, 'checkpoints', readFileSync(join(run2, 'checkpoints', 'latest'), 'utf8').trim());
    const files = new Map(['state.json', 'model.safetensors', 'optimizer.safetensors'].map((f) => [f, new Uint8Array(readFileSync(join(dir, f)))]));
    const resumed = TrainingSession.resume(be, TrainingSession.open(files), text(), 'text.txt');
    assert.equal(resumed.step, 4);
    assert.deepEqual(Array.from({ length: 4 }, () => resumed.trainOne().loss), want.slice(4, 8), 'the page continues the CLI run exactly');

    // and the data must be the run's: other text is refused with a readable message
    assert.throws(() => TrainingSession.resume(be, TrainingSession.open(files), text() + '\n\nmore words here', 'other.txt'), /resume needs the same data/);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('a GGUF file of a session\'s model: the byte vocabulary trains on from its exact weights; another vocabulary samples only', { skip }, async () => {
  const be = loaded.backend!;
  const tmp = mkdtempSync(join(tmpdir(), 'lt-session-gguf-'));
  try {
    const first = TrainingSession.fresh(be, text(), 'text.txt', MODEL, HYPER);
    for (let i = 0; i < 3; i++) first.trainOne();
    const path = join(tmp, 'm.gguf');
    writeLlamaGguf(path, first.model, byteVocab(first.config.vocabSize));
    const bytes = new Uint8Array(readFileSync(path));
    const g = TrainingSession.fromGguf(be, bytes, 'm.gguf', { text: text(), name: 'text.txt' }, HYPER);
    assert.equal(g.trainable, true);
    assert.deepEqual(g.config, first.config);
    assert.deepEqual(Array.from(g.model.params.data), Array.from(first.model.params.data), 'F32 weights read exactly');
    const ids = first.heldOutIds(32);
    assert.equal(g.score(ids), first.score(ids));
    assert.deepEqual(await g.sample('the ', 12, 1, 0), await first.sample('the ', 12, 1, 0));
    assert.equal(g.step, 0);
    assert.ok(Number.isFinite(g.trainOne().loss));
    assert.equal(g.step, 1, 'a new schedule from the weights');
    // without the text: samples, does not train
    const noText = TrainingSession.fromGguf(be, bytes, 'm.gguf', null);
    assert.equal(noText.trainable, false);
    assert.throws(() => noText.trainOne(), (e: Error) => e instanceof UserError && /load the training text first/.test(e.message));

    // a SentencePiece-style vocabulary (a piece beyond the bytes, in place of <0xFF>): its tokenizer samples; training
    // and saving say why not
    const v = byteVocab(first.config.vocabSize);
    const p2 = join(tmp, 'spm.gguf');
    writeLlamaGguf(p2, first.model, { ...v, pieces: [...v.pieces.slice(0, -1), '\u2581the'], types: [...v.types.slice(0, -1), TokenType.NORMAL] });
    const s = TrainingSession.fromGguf(be, new Uint8Array(readFileSync(p2)), 'spm.gguf', { text: text(), name: 'text.txt' });
    assert.equal(s.trainable, false);
    assert.match(s.cannotTrain ?? '', /259-piece SentencePiece-style vocabulary; the page trains with the byte tokenizer only/);
    assert.ok((await s.sample('the ', 8, 1, 0)).tokens.length > 0);
    assert.throws(() => s.save(), (e: Error) => e instanceof UserError && /samples from this model/.test(e.message));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
