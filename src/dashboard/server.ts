/**
 * The dashboard's HTTP server: one page, its static assets, and a stream of server-sent events per page carrying
 * the runs (a snapshot on connect, then only what each poll of the run logs found). Read-only: GET only; the
 * assets are a fixed table (no path from the URL reaches the file system), and a run's own files are served by
 * bare name from its directory (`/runs/<id>/<name>`: no separators, no dot files, regular files only, no listing).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createReadStream, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { RunLog, type RunLogOptions, type RunSnapshot, type RunUpdate } from './runlog.js';
import { UserError } from '../util/errors.js';

export interface DashboardOptions extends RunLogOptions {
  runs: string[];
  /** Default 6006 (0: any free port). */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** How often the run logs are looked at (default 500 ms). */
  pollMs?: number;
  /** Pages connected at once at most; more get 503 (default 64). */
  maxClients?: number;
  /**
   * Bytes of events a page may leave unread (default 8 MiB): a page that stops reading (a suspended tab, a stalled
   * proxy) is disconnected rather than buffered without bound; its EventSource reconnects and gets a fresh snapshot.
   */
  maxClientBuffer?: number;
}

export interface Dashboard {
  url: string;
  port: number;
  server: Server;
  runs: RunLog[];
  /** Reads the logs now and pushes what changed (also done every pollMs). */
  poll(): void;
  close(): Promise<void>;
}

export const DEFAULT_PORT = 6006;

/** Whether binding to `host` keeps the server on this machine. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

const WEB_JS = fileURLToPath(new URL('../web/', import.meta.url)); // dist/src/web: compiled from src/web/*.ts
const PACKAGE = fileURLToPath(new URL('../../../', import.meta.url));

/** Every static file the page may load: URL name → file and type. Nothing else under /static/ exists. */
function assetTable(): Map<string, { file: string; type: string }> {
  const js = 'text/javascript; charset=utf-8';
  const css = 'text/css; charset=utf-8';
  return new Map([
    ['dashboard.css', { file: join(PACKAGE, 'web', 'dashboard.css'), type: css }],
    ['dashboard.js', { file: join(WEB_JS, 'dashboard.js'), type: js }],
    ['charts.js', { file: join(WEB_JS, 'charts.js'), type: js }],
    ['format.js', { file: join(WEB_JS, 'format.js'), type: js }],
    ['series.js', { file: join(WEB_JS, 'series.js'), type: js }],
    ['uPlot.esm.js', { file: uplotFile('uPlot.esm.js'), type: js }],
    ['uPlot.min.css', { file: uplotFile('uPlot.min.css'), type: css }],
  ]);
}

/** uPlot's files, from node_modules as Node resolves it (the package's own, or hoisted beside it in an install). */
function uplotFile(name: string): string {
  return join(dirname(createRequire(import.meta.url).resolve('uplot/package.json')), 'dist', name);
}

/** The page's HTML (web/dashboard.html). */
export function dashboardHtml(): string {
  return readFileSync(join(PACKAGE, 'web', 'dashboard.html'), 'utf8');
}

const SAFE_NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/;

export async function startDashboard(o: DashboardOptions): Promise<Dashboard> {
  if (o.runs.length === 0) throw new UserError('give at least one run directory');
  const runs = o.runs.map((dir, i) => new RunLog(dir, i, o));
  for (const r of runs) r.poll();
  const assets = assetTable();
  const clients = new Set<ServerResponse>();
  const maxClients = o.maxClients ?? 64;

  const maxBuffer = o.maxClientBuffer ?? 8 << 20;
  const send = (res: ServerResponse, event: string, data: unknown) => {
    if (res.writableLength > maxBuffer) {
      clients.delete(res);
      res.destroy();
      return;
    }
    res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  };
  const broadcast = (event: string, data: unknown) => clients.forEach((c) => send(c, event, data));

  const poll = () => {
    for (const r of runs) {
      const u: RunUpdate = r.poll();
      if (u.reset) broadcast('snapshot', r.snapshot());
      else if (u.steps.length || u.evals.length || u.samples.length || u.stateChanged) {
        const s = r.snapshot();
        broadcast('append', { id: r.id, steps: u.steps, evals: u.evals, samples: u.samples, state: s.state, detail: s.detail, info: s.info, malformed: s.malformed, lastLineAt: s.lastLineAt });
      }
    }
  };

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    res.setHeader('X-Content-Type-Options', 'nosniff');
    if (req.method !== 'GET' && req.method !== 'HEAD') return end(res, 405, 'read-only');
    const url = req.url ?? '/';
    const path = url.split('?')[0];
    let parts: string[];
    try {
      parts = path.split('/').slice(1).map((p) => decodeURIComponent(p));
    } catch {
      return end(res, 400, 'bad path');
    }
    if (parts.some((p) => p === '..' || p === '.' || p.includes('/') || p.includes('\\') || p.includes('\0'))) return end(res, 400, 'bad path');
    if (path === '/' || path === '/index.html') {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-cache' });
      return res.end(dashboardHtml());
    }
    if (parts[0] === 'static' && parts.length === 2) {
      const a = assets.get(parts[1]);
      if (!a) return end(res, 404, 'not found');
      return serveFile(res, a.file, a.type);
    }
    if (path === '/api/runs') {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      return res.end(JSON.stringify(runs.map((r) => summary(r.snapshot()))));
    }
    if (path === '/api/events') {
      if (clients.size >= maxClients) return end(res, 503, 'too many pages connected');
      res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive' });
      res.write('retry: 2000\n\n');
      clients.add(res);
      for (const r of runs) send(res, 'snapshot', r.snapshot());
      req.on('close', () => clients.delete(res));
      return;
    }
    if (parts[0] === 'runs' && parts.length === 3) {
      const id = Number(parts[1]);
      const run = Number.isInteger(id) ? runs[id] : undefined;
      if (!run || !SAFE_NAME.test(parts[2])) return end(res, 404, 'not found');
      return serveFile(res, join(run.dir, parts[2]), parts[2].endsWith('.json') || parts[2].endsWith('.jsonl') ? 'application/json' : 'text/plain; charset=utf-8');
    }
    return end(res, 404, 'not found');
  };

  const server = createServer((req, res) => {
    try {
      handle(req, res);
    } catch {
      if (!res.headersSent) end(res, 500, 'error');
      else res.destroy();
    }
  });
  server.keepAliveTimeout = 5000;
  const host = o.host ?? '127.0.0.1';
  await new Promise<void>((ok, fail) => {
    const onError = (e: NodeJS.ErrnoException) => fail(e.code === 'EADDRINUSE' ? new UserError(`port ${o.port ?? DEFAULT_PORT} on ${host} is in use: choose another port (--port, or --dashboard=PORT)`) : e);
    server.once('error', onError);
    server.listen(o.port ?? DEFAULT_PORT, host, () => {
      server.off('error', onError);
      ok();
    });
  });
  const port = (server.address() as { port: number }).port;
  const timer = setInterval(poll, o.pollMs ?? 500);
  timer.unref();
  const ping = setInterval(() => clients.forEach((c) => c.write(': ping\n\n')), 15_000);
  ping.unref();
  const shown = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host;
  return {
    url: `http://${shown}:${port}/`, port, server, runs, poll,
    close: async () => {
      clearInterval(timer);
      clearInterval(ping);
      poll();
      for (const c of clients) c.end();
      clients.clear();
      server.closeAllConnections();
      await new Promise<void>((ok) => server.close(() => ok()));
    },
  };
}

function summary(s: RunSnapshot) {
  const last = s.steps[s.steps.length - 1];
  return { id: s.id, name: s.name, state: s.state, detail: s.detail, step: last?.step ?? null, loss: last?.loss ?? null, malformed: s.malformed };
}

function end(res: ServerResponse, code: number, text: string): void {
  res.writeHead(code, { 'Content-Type': 'text/plain; charset=utf-8' });
  res.end(text + '\n');
}

/** A regular file, streamed; anything else (absent, a directory, a link to one) is 404. */
function serveFile(res: ServerResponse, file: string, type: string): void {
  let size: number;
  try {
    const st = statSync(file);
    if (!st.isFile()) return end(res, 404, 'not found');
    size = st.size;
  } catch {
    return end(res, 404, 'not found');
  }
  res.writeHead(200, { 'Content-Type': type, 'Content-Length': size, 'Cache-Control': 'no-cache' });
  const s = createReadStream(file, { start: 0, end: Math.max(0, size - 1) });
  s.on('error', () => res.destroy());
  s.pipe(res);
}
