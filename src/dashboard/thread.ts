/**
 * The dashboard in a worker thread, for `train --dashboard`: the training loop keeps the main thread busy for a
 * whole step at a time (seconds on a large model), and a server sharing that thread would answer only between steps.
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { UserError } from '../util/errors.js';
import { startDashboard, type DashboardOptions } from './server.js';

export interface DashboardThread {
  url: string;
  port: number;
  close(): Promise<void>;
}

type Reply = { url: string; port: number } | { error: string; user: boolean } | { closed: true };

export function startDashboardThread(o: DashboardOptions): Promise<DashboardThread> {
  const worker = new Worker(new URL('./thread.js', import.meta.url), { workerData: o });
  worker.unref();
  return new Promise((ok, fail) => {
    worker.once('error', fail);
    worker.once('message', (m: Reply) => {
      if ('error' in m) return fail(m.user ? new UserError(m.error) : new Error(m.error));
      if (!('url' in m)) return;
      ok({
        url: m.url, port: m.port,
        close: () => new Promise<void>((done) => {
          worker.ref(); // keep this process alive until the server has closed
          worker.once('exit', () => done());
          worker.postMessage('close');
        }),
      });
    });
  });
}

if (!isMainThread && parentPort && (workerData as { runs?: unknown })?.runs) {
  const port = parentPort;
  startDashboard(workerData as DashboardOptions).then(
    (d) => {
      port.postMessage({ url: d.url, port: d.port } satisfies Reply);
      port.on('message', async (m) => {
        if (m !== 'close') return;
        await d.close();
        port.close();
      });
    },
    (e: Error) => port.postMessage({ error: e.message, user: e instanceof UserError } satisfies Reply),
  );
}
