#!/usr/bin/env node
/**
 * Makes docs/web-page.png, the README's picture of the training page: builds the page (web/build.mjs; run `npx tsc`
 * first), serves it with the isolation headers, trains in headless Chromium (Debian /usr/bin/chromium, no download)
 * until the first samples, pauses and takes the screenshot. Usage: node scripts/screenshot-web.mjs [--steps N (150)]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const steps = Number(process.argv.includes('--steps') ? process.argv[process.argv.indexOf('--steps') + 1] : 150);
const site = mkdtempSync(join(tmpdir(), 'lt-shot-'));
execFileSync(process.execPath, [join(root, 'web/build.mjs'), '--out', site], { stdio: 'inherit' });
const { serveWeb } = await import(pathToFileURL(join(root, 'web/serve.mjs')).href);
const server = await serveWeb(site, 0);
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  await page.goto(server.url);
  await page.waitForFunction(() => !document.getElementById('train').disabled, null, { timeout: 60_000 });
  await page.click('#train');
  await page.waitForFunction((n) => globalThis.llamaTs.steps.length >= n, steps, { timeout: 600_000 });
  await page.click('#train');
  await page.waitForFunction(() => document.getElementById('train').textContent === 'Continue');
  const out = join(root, 'docs', 'web-page.png');
  await page.screenshot({ path: out });
  console.log(`wrote ${out}`);
} finally {
  await browser.close();
  await server.close();
  rmSync(site, { recursive: true, force: true });
}
