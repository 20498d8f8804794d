/**
 * The dashboard in headless Chromium (the system browser through playwright-core; nothing is downloaded): the
 * charts render, a line appended to train.jsonl shows within 2 s, two runs overlay, the ended / crashed / diverged
 * states show. Skipped, with the reason, only when /usr/bin/chromium is absent (.ci/run installs it).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startDashboard, type Dashboard } from '../src/dashboard/server.js';
import { fakeRun, append, stepLine, deadPid } from './helpers/dashboard.js';

const CHROMIUM = process.env.LLAMA_TS_CHROMIUM ?? '/usr/bin/chromium';
const skip = existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (apt-get install chromium; CI installs it)`;
const tmp = () => mkdtempSync(join(tmpdir(), 'llama-ts-dash-'));

let browser: Browser;
let dash: Dashboard;
let live: string;
let page: Page;
const errors: string[] = [];

before(async () => {
  if (skip) return;
  const d = tmp();
  live = fakeRun(join(d, 'lr-3e-4'), 40);
  const other = fakeRun(join(d, 'lr-1e-3'), 60, { status: 'finished', stopAt: 60, steps: 60, checkpoint: { path: join(d, 'lr-1e-3', 'checkpoints', 'step-00000060'), step: 60 } }, 1e-3);
  const crashed = fakeRun(join(d, 'crashed'), 20, { pid: deadPid() });
  const diverged = fakeRun(join(d, 'diverged'), 15, { status: 'diverged', error: 'training diverged: loss NaN' });
  dash = await startDashboard({ runs: [live, other, crashed, diverged], port: 0, pollMs: 100, quietMs: 200 });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('response', (r) => r.status() >= 400 && errors.push(`${r.status()} ${r.url()}`));
  await page.goto(dash.url);
});

after(async () => {
  await browser?.close();
  await dash?.close();
});

test('the charts render: a canvas per chart with lines drawn', { skip }, async () => {
  await page.waitForSelector('#run-0[data-last-step="40"]', { timeout: 5000 });
  await page.waitForFunction(() => document.querySelectorAll('.chart canvas').length >= 6, null, { timeout: 5000 });
  await page.waitForTimeout(100); // one animation frame
  const inked = await page.$$eval('.chart canvas', (cs) => cs.map((c) => {
    const canvas = c as HTMLCanvasElement;
    const px = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
    let n = 0;
    for (let i = 3; i < px.length; i += 4) if (px[i] > 0) n++;
    return n;
  }));
  assert.ok(inked.length >= 6, `${inked.length} canvases`);
  for (const n of inked) assert.ok(n > 200, `a chart canvas has only ${n} painted pixels`);
  // the learning-rate axis reads 3e-4, not 0
  const lrAxis = await page.$eval('.chart[data-chart="lr"]', (e) => e.textContent ?? '');
  assert.match(lrAxis, /[1-9](\.\d+)?e-4/);
  assert.deepEqual(errors, []);
});

test('a line appended to train.jsonl shows on the page within 2 s', { skip }, async () => {
  await page.waitForSelector('#run-0[data-last-step="40"]', { timeout: 5000 });
  append(live, stepLine(41));
  const t0 = Date.now();
  await page.waitForSelector('#run-0[data-last-step="41"]', { timeout: 2000 });
  const legendRows = await page.$$eval('.chart[data-chart="loss"] .u-legend .u-series', (e) => e.length);
  assert.ok(legendRows > 1);
  assert.ok(Date.now() - t0 < 2000);
});

test('two runs overlay, with both in the legend', { skip }, async () => {
  await page.waitForSelector('#run-1');
  const legend = await page.$eval('.chart[data-chart="loss"] .u-legend', (e) => e.textContent ?? '');
  assert.match(legend, /lr-3e-4/);
  assert.match(legend, /lr-1e-3/);
  // x in tokens and a linear y rebuild the charts without errors
  await page.selectOption('#x-axis', 'tokens');
  await page.uncheck('#log-y');
  await page.waitForFunction(() => /tokens/.test(document.querySelector('.chart[data-chart="loss"]')?.textContent ?? ''), null, { timeout: 2000 });
  assert.deepEqual(errors, []);
});

test('ended, crashed and diverged runs say so; the live one is running', { skip }, async () => {
  const state = (id: number) => page.$eval(`#run-${id} .state`, (e) => (e as HTMLElement).dataset.state);
  await page.waitForSelector('#run-2[data-state="crashed"]', { timeout: 3000 });
  assert.equal(await state(0), 'running');
  assert.equal(await state(1), 'ended');
  assert.equal(await state(2), 'crashed');
  assert.equal(await state(3), 'diverged');
  assert.match(await page.$eval('#run-1', (e) => e.textContent ?? ''), /step-00000060/);
});

test('the page fits a phone: no horizontal scrolling at 390 px', { skip }, async () => {
  const phone = await browser.newPage({ viewport: { width: 390, height: 800 } });
  await phone.goto(dash.url);
  await phone.waitForSelector('.chart canvas');
  await phone.waitForTimeout(200);
  const [scroll, client] = await phone.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
  assert.ok(scroll <= client + 1, `page is ${scroll} px wide in a ${client} px window`);
  await phone.close();
});
