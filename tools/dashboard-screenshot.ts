/**
 * The dashboard screenshot in docs/ and the README, taken from a real run: starts `llama-ts demo` (the demo model on
 * the bundled mixture, samples at its evaluations), serves its run directory, and once the run is ~60 % through
 * photographs the page in headless Chromium (the system browser through playwright-core).
 *
 *   npm run build && node dist/tools/dashboard-screenshot.js [--minutes 2] [--out docs/dashboard.png]
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { startDashboard } from '../src/dashboard/server.js';
import { findChromium } from '../src/dashboard/plot.js';

const root = new URL('../../', import.meta.url).pathname;
const { values } = parseArgs({ options: { minutes: { type: 'string', default: '2' }, out: { type: 'string', default: join(root, 'docs', 'dashboard.png') }, run: { type: 'string', default: join(root, 'runs', 'dashboard-demo') } } });
const exe = await findChromium();
if (!exe) throw new Error('no Chromium (apt-get install chromium)');
const runDir = values.run!;

const demo = spawn(process.execPath, [join(root, 'bin', 'llama-ts.js'), 'demo', '--minutes', values.minutes!, '--out', runDir, '--quiet'], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
const progress = () => {
  try {
    const info = JSON.parse(readFileSync(join(runDir, 'run.json'), 'utf8'));
    const steps = readFileSync(join(runDir, 'train.jsonl'), 'utf8').trim().split('\n').filter((l) => l.includes('"loss"')).length;
    return steps / info.stopAt;
  } catch {
    return 0;
  }
};
while (progress() < 0.6) {
  if (demo.exitCode !== null) throw new Error(`the demo exited (${demo.exitCode}) before it was 60 % through`);
  await new Promise((r) => setTimeout(r, 1000));
}
if (!existsSync(join(runDir, 'train.jsonl'))) throw new Error('no train.jsonl');
const dash = await startDashboard({ runs: [runDir], port: 0 });
const browser = await chromium.launch({ executablePath: exe, args: ['--no-sandbox'] });
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(dash.url);
  await page.waitForSelector('.chart canvas');
  await page.waitForSelector('#samples .sample');
  await page.waitForTimeout(500);
  await page.screenshot({ path: values.out!, fullPage: true });
  console.error(`wrote ${values.out} (${dash.url} at ${(progress() * 100).toFixed(0)} % of the run)`);
} finally {
  await browser.close();
  await dash.close();
  demo.kill('SIGINT');
}
