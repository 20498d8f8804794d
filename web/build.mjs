#!/usr/bin/env node
/**
 * Builds the training page into a folder any static host can serve (default dist-web/): the page and its two
 * workers bundled by esbuild from src/browser/ (ES modules), index.html and its stylesheets, the three wasm modules
 * (wasm/), and sample.txt: a small slice of the demo mixture (Brown corpus samples, Node.js API prose, this project's
 * docs; data/recipes/demo.json). Threads need the page to be cross-origin isolated: serve it with
 * `Cross-Origin-Opener-Policy: same-origin` and `Cross-Origin-Embedder-Policy: require-corp` (web/serve.mjs does);
 * without them it trains on one thread. Run `npx tsc` first (the sample text is read through dist/).
 * Usage: node web/build.mjs [--out DIR]
 */
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const i = process.argv.indexOf('--out');
const out = i > 0 ? process.argv[i + 1] : join(root, 'dist-web');

/** The bundled text: every 10th Brown sample, the first Node.js API documents, and this project's architecture page. */
export async function sampleText() {
  const { brownDocuments } = await import(pathToFileURL(join(root, 'dist/src/data/brown.js')).href);
  const brown = brownDocuments().filter((_, k) => k % 10 === 0);
  const node = gunzipSync(readFileSync(join(root, 'data/demo/node-api-docs.jsonl.gz'))).toString('utf8').split('\n')
    .filter(Boolean).slice(0, 40).map((l) => JSON.parse(l).text);
  const docs = [...brown, ...node, readFileSync(join(root, 'docs/ARCHITECTURE.md'), 'utf8')];
  return docs.map((d) => d.trim()).join('\n\n') + '\n';
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  await build({
    entryPoints: { page: 'src/browser/page.ts', 'train-worker': 'src/browser/train-worker.ts', 'kernel-worker': 'src/browser/kernel-worker.ts' },
    absWorkingDir: root, outdir: out, bundle: true, format: 'esm', platform: 'browser', target: 'es2022', minify: true,
    sourcemap: true, logLevel: 'warning',
  });
  for (const f of ['index.html', 'train.css']) copyFileSync(join(root, 'web', f), join(out, f));
  copyFileSync(join(root, 'node_modules/uplot/dist/uPlot.min.css'), join(out, 'uPlot.min.css'));
  for (const f of readdirSync(join(root, 'wasm')).filter((f) => f.endsWith('.wasm'))) copyFileSync(join(root, 'wasm', f), join(out, f));
  writeFileSync(join(out, 'sample.txt'), await sampleText());
  console.log(`web: built ${out} (serve it with COOP/COEP headers for threads: npm run web)`);
}
