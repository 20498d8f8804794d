/**
 * The training page in headless Chromium (Debian's /usr/bin/chromium through playwright-core; no browser download):
 * served with COOP/COEP it is cross-origin isolated and trains on more than one worker; the loss falls over a few
 * dozen steps; the downloaded checkpoint scores, under `llama-ts score`, the loss the page reported; bad input (a
 * binary file, an empty file, a checkpoint of another model, a safetensors file that is no checkpoint) shows a
 * readable message and the page keeps working (it then loads its own checkpoint to continue).
 * GGUF files: one that `llama-ts convert --to gguf` wrote from a CLI-trained model (F32, and Q8_0) is dropped on the
 * page, which samples greedily the tokens `llama-ts generate --temperature 0` gives, scores held-out text to the loss
 * `llama-ts score` gives on the same file, and trains on from it; a GGUF with a SentencePiece-style vocabulary
 * samples (same tokens as the CLI) but does not train; a truncated GGUF, one of another architecture and one whose
 * vocabulary does not fit show a readable message.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { decodeSafetensors, encodeSafetensors, BUNDLE_KEY } from '../src/io/bundle.js';
import { readGguf, writeGguf, GgufValueType as T, type GgufKv, type GgufValue } from '../src/io/gguf.js';
import { writeLlamaGguf } from '../src/io/gguf-llama.js';
import { makeConfig } from '../src/model/config.js';
import { byteVocab, TokenType, type TokenizerVocab } from '../src/tokenizer/vocab.js';
import { peakedModel } from './helpers/models.js';
import type { Browser, Page } from 'playwright-core';

const root = fileURLToPath(new URL('../../', import.meta.url));
const CHROMIUM = '/usr/bin/chromium';
const skip = existsSync(CHROMIUM) ? false : `needs ${CHROMIUM}`;

interface Seen { steps: { step: number; loss: number }[]; threads: number; isolated: boolean }

/** A new page (downloads accepted) at `url`, with its uncaught errors collected. */
async function openPage(browser: Browser, url: string): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage({ acceptDownloads: true });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url);
  return { page, errors };
}
test('the page trains in Chromium (isolated, several workers), and the CLI scores its checkpoint to the same loss', { skip, timeout: 600_000 }, async () => {
  const { chromium } = await import('playwright-core');
  const { serveWeb } = (await import(pathToFileURL(join(root, 'web/serve.mjs')).href)) as { serveWeb(dir: string, port: number): Promise<{ url: string; close(): Promise<void> }> };
  const tmp = mkdtempSync(join(tmpdir(), 'lt-web-'));
  const site = join(tmp, 'site');
  execFileSync(process.execPath, [join(root, 'web/build.mjs'), '--out', site], { cwd: root, stdio: 'pipe' });
  const server = await serveWeb(site, 0);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  try {
    const { page, errors } = await openPage(browser, server.url);
    await page.waitForFunction(() => (globalThis as { llamaTs?: Seen }).llamaTs!.threads > 0, null, { timeout: 60_000 });
    const env = await page.evaluate(() => ({ isolated: crossOriginIsolated, seen: (globalThis as { llamaTs?: Seen }).llamaTs! }));
    assert.equal(env.isolated, true, 'the page is cross-origin isolated');
    assert.ok(env.seen.threads > 1, `kernels run on ${env.seen.threads} threads (the training worker and ${env.seen.threads - 1} kernel workers)`);

    // a few dozen steps on the bundled text
    await page.waitForFunction(() => !(document.getElementById('train') as HTMLButtonElement).disabled, null, { timeout: 60_000 });
    await page.click('#train');
    await page.waitForFunction(() => (globalThis as { llamaTs?: Seen }).llamaTs!.steps.length >= 30 || !(document.getElementById('error') as HTMLElement).hidden, null, { timeout: 300_000 });
    assert.equal(await page.isVisible('#error'), false, `no error: ${await page.textContent('#error')}`);
    await page.click('#train'); // pause
    const steps = await page.evaluate(() => (globalThis as { llamaTs?: Seen }).llamaTs!.steps);
    const mean = (a: { loss: number }[]) => a.reduce((s, x) => s + x.loss, 0) / a.length;
    const first = mean(steps.slice(0, 5)), last = mean(steps.slice(-5));
    assert.ok(last < first - 0.3, `loss falls: first five ${first.toFixed(3)}, last five ${last.toFixed(3)}`);

    // the checkpoint: downloaded, then scored by the CLI
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#save')]);
    const ckpt = join(tmp, 'page.safetensors');
    await download.saveAs(ckpt);
    const { ids, score } = await page.evaluate(() => {
      const a = document.getElementById('download') as HTMLAnchorElement;
      return { ids: JSON.parse(a.dataset.ids!) as number[], score: Number(a.dataset.score) };
    });
    writeFileSync(join(tmp, 'ids.txt'), ids.join(' '));
    const out = execFileSync(process.execPath, [join(root, 'bin/llama-ts.js'), 'score', '--model', ckpt, '--ids', join(tmp, 'ids.txt')], { encoding: 'utf8' });
    const cli = JSON.parse(out) as { mean_loss: number };
    assert.ok(Math.abs(cli.mean_loss - score) <= 1e-4 * Math.abs(score), `CLI loss ${cli.mean_loss} vs page ${score}`);
    const gen = execFileSync(process.execPath, [join(root, 'bin/llama-ts.js'), 'generate', '--model', ckpt, '--prompt', 'The', '--max-tokens', '8'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    assert.ok(gen.length > 0);

    // bad input: a readable message, never a blank page or a hung worker
    const errorText = async () => {
      await page.waitForFunction(() => !(document.getElementById('error') as HTMLElement).hidden, null, { timeout: 30_000 });
      const t = await page.textContent('#error');
      await page.evaluate(() => ((document.getElementById('error') as HTMLElement).hidden = true));
      return t ?? '';
    };
    const binary = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 131 + 7) % 256));
    await page.setInputFiles('#file', { name: 'photo.bin', mimeType: 'application/octet-stream', buffer: binary });
    assert.match(await errorText(), /photo\.bin' looks like a binary file/);
    await page.setInputFiles('#file', { name: 'empty.txt', mimeType: 'text/plain', buffer: Buffer.alloc(0) });
    assert.match(await errorText(), /empty\.txt' is empty/);
    // a checkpoint whose config is another model's than its tensors
    const st = decodeSafetensors(new Uint8Array(readFileSync(ckpt)), 'page checkpoint');
    const state = JSON.parse(st.metadata[BUNDLE_KEY]) as { config: { dim: number } };
    state.config.dim = 64;
    const tensors = [...st.tensors].map(([name, t]) => ({ name, shape: t.shape, data: t.data! }));
    const other = encodeSafetensors(tensors, { ...st.metadata, [BUNDLE_KEY]: JSON.stringify(state) });
    await page.setInputFiles('#file', { name: 'other.safetensors', mimeType: 'application/octet-stream', buffer: Buffer.from(other) });
    assert.match(await errorText(), /other\.safetensors': tensor '.*' has shape \[.*\] but the config needs/);
    const plain = encodeSafetensors([{ name: 'w', shape: [2], data: [1, 2] }], {});
    await page.setInputFiles('#file', { name: 'model.safetensors', mimeType: 'application/octet-stream', buffer: Buffer.from(plain) });
    assert.match(await errorText(), /not a llama-ts checkpoint/);

    // still working: its own checkpoint loads and the run continues from it
    await page.setInputFiles('#file', ckpt);
    await page.waitForFunction(() => /continued from step/.test(document.getElementById('model')!.textContent ?? ''), null, { timeout: 60_000 });
    assert.deepEqual(errors, []);
    await page.screenshot({ path: join(tmp, 'page.png') });
  } finally {
    await browser.close();
    await server.close();
    rmSync(tmp, { recursive: true, force: true });
  }
});

/** A GGUF file rewritten with its metadata edited (`edit` returns the new value, or undefined to drop the key). */
function rewriteGguf(from: string, to: string, edit: (key: string, value: GgufValue) => GgufValue | undefined): void {
  const f = readGguf(from);
  const scalarType = (v: GgufValue): T => (typeof v === 'string' ? T.STRING : typeof v === 'boolean' ? T.BOOL : Number.isInteger(v) ? T.UINT32 : T.FLOAT32);
  const kvs: GgufKv[] = [];
  for (const [key, v] of f.metadata) {
    const value = edit(key, v);
    if (value === undefined) continue;
    if (!Array.isArray(value)) kvs.push({ key, type: scalarType(value), value });
    else kvs.push({ key, type: T.ARRAY, elemType: value.every((x) => typeof x === 'string') ? T.STRING : key.endsWith('token_type') ? T.INT32 : T.FLOAT32, value });
  }
  writeGguf(to, kvs, [...f.tensors.values()].map((t) => ({ name: t.name, shape: t.shape, data: f.readF32(t.name), type: 'F32' as const })));
}

interface Generated { prompt: string; text: string; tokens: number[] }
interface SeenGguf extends Seen { generated: Generated | null; runs: number }

test('the page loads GGUF files the CLI wrote: greedy samples and scores as the CLI gives them, trains on; bad GGUF files show a message', { skip, timeout: 600_000 }, async (t) => {
  const { chromium } = await import('playwright-core');
  const { serveWeb } = (await import(pathToFileURL(join(root, 'web/serve.mjs')).href)) as { serveWeb(dir: string, port: number): Promise<{ url: string; close(): Promise<void> }> };
  const tmp = mkdtempSync(join(tmpdir(), 'lt-webgguf-'));
  const site = join(tmp, 'site');
  const cli = (...args: string[]) => execFileSync(process.execPath, [join(root, 'bin/llama-ts.js'), ...args], { cwd: tmp, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  execFileSync(process.execPath, [join(root, 'web/build.mjs'), '--out', site], { cwd: root, stdio: 'pipe' });
  // a tiny byte-level model trained by the CLI on the page's own text, exported as F32 and Q8_0 GGUF
  cli('train', '--preset', 'mini-260k', '--dim', '32', '--layers', '2', '--heads', '2', '--kv-heads', '1', '--seq', '64', '--batch', '4', '--steps', '200',
    '--data', join(site, 'sample.txt'), '--out', join(tmp, 'run'), '--eval-batches', '0');
  const f32 = join(tmp, 'tiny.gguf'), q8 = join(tmp, 'tiny-q8_0.gguf');
  cli('convert', '--from', join(tmp, 'run'), '--to', f32);
  cli('convert', '--from', join(tmp, 'run'), '--to', q8, '--type', 'q8_0');
  // a model with a SentencePiece-style vocabulary (pieces beyond the bytes): the page samples from it, cannot train it
  const byte = byteVocab(259);
  const extra = ['\u2581', 't', 'h', 'e', '\u2581t', 'he', '\u2581the', 'a', '\u2581a', 'n', 'd'];
  const vocab: TokenizerVocab = {
    ...byte, pieces: [...byte.pieces, ...extra], scores: [...byte.scores, ...extra.map((_, i) => -i)], types: [...byte.types, ...extra.map(() => TokenType.NORMAL)],
  };
  const spm = join(tmp, 'spm.gguf');
  writeLlamaGguf(spm, peakedModel(makeConfig({ dim: 32, nLayers: 2, nHeads: 2, nKvHeads: 1, vocabSize: vocab.pieces.length, multipleOf: 16, maxSeqLen: 64 })), vocab);

  const server = await serveWeb(site, 0);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  try {
    const { page, errors } = await openPage(browser, server.url);
    await page.waitForFunction(() => !(document.getElementById('train') as HTMLButtonElement).disabled, null, { timeout: 60_000 });
    const seen = () => page.evaluate(() => (globalThis as { llamaTs?: SeenGguf }).llamaTs!);
    const errorText = async () => {
      await page.waitForFunction(() => !(document.getElementById('error') as HTMLElement).hidden, null, { timeout: 30_000 });
      const t = await page.textContent('#error');
      await page.evaluate(() => ((document.getElementById('error') as HTMLElement).hidden = true));
      return t ?? '';
    };
    const load = async (path: string, name: string) => {
      const runs = (await seen()).runs;
      await page.setInputFiles('#file', { name, mimeType: 'application/octet-stream', buffer: readFileSync(path) });
      await page.waitForFunction((n) => (globalThis as { llamaTs?: SeenGguf }).llamaTs!.runs > n || !(document.getElementById('error') as HTMLElement).hidden, runs, { timeout: 60_000 });
      assert.equal(await page.isVisible('#error'), false, `${name} loads: ${await page.textContent('#error')}`);
      assert.match((await page.textContent('#model')) ?? '', new RegExp(`loaded from ${name.replace('.', '\\.')}`));
    };
    const greedy = async (prompt: string, n: number): Promise<Generated> => {
      await page.evaluate(() => ((globalThis as { llamaTs?: SeenGguf }).llamaTs!.generated = null));
      await page.fill('#prompt', prompt);
      await page.fill('#temperature', '0');
      await page.fill('#max-tokens', String(n));
      await page.click('#generate');
      await page.waitForFunction(() => (globalThis as { llamaTs?: SeenGguf }).llamaTs!.generated !== null || !(document.getElementById('error') as HTMLElement).hidden, null, { timeout: 60_000 });
      assert.equal(await page.isVisible('#error'), false, `sampling: ${await page.textContent('#error')}`);
      return (await seen()).generated!;
    };
    const cliGreedy = (model: string, prompt: string, n: number) =>
      JSON.parse(cli('generate', '--model', model, '--prompt', prompt, '--temperature', '0', '--max-tokens', String(n), '--json')) as { text: string; tokens: number[] };
    /** Saves the page's model, and scores the saved held-out window with the CLI on `model`. */
    const scores = async (model: string) => {
      const [download] = await Promise.all([page.waitForEvent('download'), page.click('#save')]);
      await download.saveAs(join(tmp, 'saved.safetensors'));
      const { ids, score } = await page.evaluate(() => {
        const a = document.getElementById('download') as HTMLAnchorElement;
        return { ids: JSON.parse(a.dataset.ids!) as number[], score: Number(a.dataset.score) };
      });
      writeFileSync(join(tmp, 'ids.txt'), ids.join(' '));
      const scoreOf = (m: string, ...extra: string[]) => (JSON.parse(cli('score', '--model', m, '--ids', join(tmp, 'ids.txt'), ...extra)) as { mean_loss: number }).mean_loss;
      return { page: score, cli: scoreOf(model), saved: scoreOf(join(tmp, 'saved.safetensors')), ref: scoreOf(model, '--backend', 'ref') };
    };

    // F32: the page's greedy continuation and teacher-forced loss are the CLI's on the same file
    await load(f32, 'tiny.gguf');
    for (const prompt of ['The ', 'In the ']) {
      const p = await greedy(prompt, 24), c = cliGreedy(f32, prompt, 24);
      assert.deepEqual(p.tokens, c.tokens, `greedy tokens after ${JSON.stringify(prompt)}: page ${JSON.stringify(p.text)}, CLI ${JSON.stringify(c.text)}`);
      assert.equal(p.text, c.text);
    }
    const s = await scores(f32);
    t.diagnostic(`F32 GGUF held-out loss: page ${s.page}, llama-ts score ${s.cli}, the page's checkpoint ${s.saved}`);
    assert.ok(Math.abs(s.page - s.cli) <= 1e-4 * Math.abs(s.cli), `F32 GGUF: page loss ${s.page}, llama-ts score ${s.cli}`);
    assert.ok(Math.abs(s.saved - s.cli) <= 1e-5 * Math.abs(s.cli), `the page's checkpoint of it scores ${s.saved}, the GGUF ${s.cli}`);
    // and it trains on from the GGUF's weights
    const before = (await seen()).steps.length;
    await page.click('#train');
    await page.waitForFunction((n) => (globalThis as { llamaTs?: SeenGguf }).llamaTs!.steps.length >= n + 5 || !(document.getElementById('error') as HTMLElement).hidden, before, { timeout: 120_000 });
    assert.equal(await page.isVisible('#error'), false, `training from the GGUF: ${await page.textContent('#error')}`);
    await page.click('#train'); // pause
    const trained = (await seen()).steps.slice(before);
    assert.equal(trained[0].step, 1, 'a new schedule from the GGUF weights');
    assert.ok(trained.every((r) => Number.isFinite(r.loss)) && trained[0].loss < 3.5, `continues from the trained weights (first loss ${trained[0].loss}; a fresh model starts near ln 259 = 5.56)`);

    // Q8_0: dequantized to float32 on load. The CLI's reference backend multiplies the dequantized blocks in float32
    // for a scored sequence too: the same loss within float32 rounding. The native backend's prefill keeps the
    // activations in int8 per block (as llama.cpp does): within that quantization's error of it. Same greedy tokens.
    await load(q8, 'tiny-q8_0.gguf');
    const pq = await greedy('The ', 16), cq = cliGreedy(q8, 'The ', 16);
    assert.deepEqual(pq.tokens, cq.tokens, `Q8_0 greedy: page ${JSON.stringify(pq.text)}, CLI ${JSON.stringify(cq.text)}`);
    const sq = await scores(q8);
    t.diagnostic(`Q8_0 GGUF held-out loss: page (dequantized) ${sq.page}, llama-ts score --backend ref ${sq.ref}, native (int8 activations) ${sq.cli}`);
    assert.ok(Math.abs(sq.page - sq.ref) <= 1e-4 * Math.abs(sq.ref), `Q8_0 GGUF: page loss ${sq.page}, llama-ts score --backend ref ${sq.ref}`);
    assert.ok(Math.abs(sq.page - sq.cli) <= 5e-3 * Math.abs(sq.cli), `Q8_0 GGUF: page loss ${sq.page}, llama-ts score ${sq.cli}`);

    // a SentencePiece-style vocabulary: samples with its own tokenizer (the CLI's tokens), does not train
    await load(spm, 'spm.gguf');
    assert.match((await page.textContent('#model')) ?? '', /samples only: .*270-piece SentencePiece-style vocabulary/);
    const ps = await greedy('the cat and the hat', 16), cs = cliGreedy(spm, 'the cat and the hat', 16);
    assert.deepEqual(ps.tokens, cs.tokens, `SentencePiece-vocabulary greedy: page ${JSON.stringify(ps.text)}, CLI ${JSON.stringify(cs.text)}`);
    await page.click('#train');
    assert.match(await errorText(), /trains with the byte tokenizer only: it samples from this model/);

    // bad GGUF files: one line each, and the page keeps working
    const whole = readFileSync(f32);
    await page.setInputFiles('#file', { name: 'cut.gguf', mimeType: 'application/octet-stream', buffer: whole.subarray(0, whole.length >> 1) });
    assert.match(await errorText(), /GGUF file 'cut\.gguf' is truncated/);
    await page.setInputFiles('#file', { name: 'head.gguf', mimeType: 'application/octet-stream', buffer: whole.subarray(0, 200) });
    assert.match(await errorText(), /GGUF file 'head\.gguf' is (truncated|corrupt)/);
    rewriteGguf(f32, join(tmp, 'qwen.gguf'), (k, v) => (k === 'general.architecture' ? 'qwen2' : v));
    await page.setInputFiles('#file', join(tmp, 'qwen.gguf'));
    assert.match(await errorText(), /qwen\.gguf': architecture 'qwen2' is not supported \(only 'llama'\)/);
    rewriteGguf(f32, join(tmp, 'vocab.gguf'), (k, v) => (k.startsWith('tokenizer.ggml.') && Array.isArray(v) ? v.slice(0, 100) : v));
    await page.setInputFiles('#file', join(tmp, 'vocab.gguf'));
    assert.match(await errorText(), /vocab\.gguf': 100 tokenizer pieces for a vocabulary of 259/);
    rewriteGguf(f32, join(tmp, 'gpt2.gguf'), (k, v) => (k === 'tokenizer.ggml.model' ? 'gpt2' : v));
    await page.setInputFiles('#file', join(tmp, 'gpt2.gguf'));
    assert.match(await errorText(), /gpt2\.gguf' has a 'gpt2' tokenizer, which llama-ts does not read/);
    await page.setInputFiles('#file', { name: 'fake.gguf', mimeType: 'application/octet-stream', buffer: Buffer.from('not a model at all') });
    assert.match(await errorText(), /'fake\.gguf' is not a GGUF file/);
    // still working: the good file loads again and samples
    await load(f32, 'tiny.gguf');
    assert.deepEqual((await greedy('The ', 8)).tokens, cliGreedy(f32, 'The ', 8).tokens);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await server.close();
    rmSync(tmp, { recursive: true, force: true });
  }
});
