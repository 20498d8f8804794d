/**
 * The training page in headless Chromium (Debian's /usr/bin/chromium through playwright-core; no browser download):
 * served with COOP/COEP it is cross-origin isolated and trains on more than one worker; the loss falls over a few
 * dozen steps; the downloaded checkpoint scores, under `llama-ts score`, the loss the page reported; bad input (a
 * binary file, an empty file, a checkpoint of another model, a safetensors file that is no checkpoint) shows a
 * readable message and the page keeps working (it then loads its own checkpoint to continue).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { decodeSafetensors, encodeSafetensors, BUNDLE_KEY } from '../src/io/bundle.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const CHROMIUM = '/usr/bin/chromium';
const skip = existsSync(CHROMIUM) ? false : `needs ${CHROMIUM}`;

interface Seen { steps: { step: number; loss: number }[]; threads: number; isolated: boolean }

test('the page trains in Chromium (isolated, several workers), and the CLI scores its checkpoint to the same loss', { skip, timeout: 600_000 }, async () => {
  const { chromium } = await import('playwright-core');
  const { serveWeb } = (await import(pathToFileURL(join(root, 'web/serve.mjs')).href)) as { serveWeb(dir: string, port: number): Promise<{ url: string; close(): Promise<void> }> };
  const tmp = mkdtempSync(join(tmpdir(), 'lt-web-'));
  const site = join(tmp, 'site');
  execFileSync(process.execPath, [join(root, 'web/build.mjs'), '--out', site], { cwd: root, stdio: 'pipe' });
  const server = await serveWeb(site, 0);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage({ acceptDownloads: true });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(server.url);
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
