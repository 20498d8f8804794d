#!/usr/bin/env node
/**
 * Serves a built page folder (default dist-web/) on 127.0.0.1 with the headers that make it cross-origin isolated
 * (COOP same-origin, COEP require-corp), so the wasm kernels run on several threads over a shared memory.
 * Usage: node web/serve.mjs [--dir DIR] [--port N (8377; 0: any free port)]; prints the URL.
 */
import { createServer } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { dirname, extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.wasm': 'application/wasm', '.txt': 'text/plain; charset=utf-8', '.map': 'application/json', '.json': 'application/json',
};

/** Starts the server; resolves with its URL and a close function. */
export async function serveWeb(dir, port = 8377) {
  const rootDir = normalize(dir) + sep;
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const file = normalize(join(rootDir, path.endsWith('/') ? path + 'index.html' : path));
    const headers = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp', 'Cache-Control': 'no-store' };
    try {
      if (!file.startsWith(rootDir) || !(await stat(file)).isFile()) throw new Error('not found');
      const body = await readFile(file);
      res.writeHead(200, { ...headers, 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream' });
      res.end(body);
    } catch {
      res.writeHead(404, { ...headers, 'Content-Type': 'text/plain' });
      res.end('not found\n');
    }
  });
  await new Promise((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}/`;
  return { url, close: () => new Promise((r) => server.close(() => r())) };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const arg = (n, d) => (process.argv.includes(n) ? process.argv[process.argv.indexOf(n) + 1] : d);
  const dir = arg('--dir', join(dirname(fileURLToPath(import.meta.url)), '..', 'dist-web'));
  const { url } = await serveWeb(dir, Number(arg('--port', '8377')));
  console.log(`llama-ts training page: ${url} (cross-origin isolated; Ctrl-C to stop)`);
}
