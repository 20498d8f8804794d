import { spawn } from 'node:child_process';
import type { Command } from './main.js';
import { parse, int, str } from './args.js';
import { startDashboard, isLoopback, DEFAULT_PORT } from '../dashboard/server.js';
import { startDashboardThread } from '../dashboard/thread.js';
import { UserError } from '../util/errors.js';

const USAGE = `usage: llama-ts dashboard RUN_DIR... [--port P (${DEFAULT_PORT})] [--host 127.0.0.1] [--open]
Serves a live page for the runs (train.jsonl and run.json of each directory): loss, held-out loss, learning rate,
gradient norm, tokens/s, MFU and phase times, several runs overlaid; config, progress, ETA, checkpoint, samples.
Read-only. --host other than loopback exposes it to the network (a warning is printed). Ctrl-C stops it.`;

/**
 * Starts the dashboard and prints its URL (and a warning when it listens beyond this machine). `thread`: in a worker
 * thread, so that it answers while this thread trains.
 */
export async function serveDashboard(runs: string[], o: { port?: number; host?: string; open?: boolean; thread?: boolean; log?: (line: string) => void }): Promise<{ url: string; close(): Promise<void> }> {
  const log = o.log ?? ((l: string) => console.error(l));
  const host = o.host ?? '127.0.0.1';
  if (!isLoopback(host)) log(`warning: the dashboard listens on ${host}: anyone who can reach this machine can read these runs' logs`);
  const d = await (o.thread ? startDashboardThread : startDashboard)({ runs, port: o.port, host });
  log(`dashboard: ${d.url}`);
  if (o.open) openBrowser(d.url, log);
  return d;
}

function openBrowser(url: string, log: (line: string) => void): void {
  const cmd = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'explorer' : 'xdg-open';
  const child = spawn(cmd, [url], { detached: true, stdio: 'ignore' });
  child.on('error', () => log(`could not start '${cmd}': open ${url} yourself`));
  child.unref();
}

/** --port: a TCP port (0: any free one). */
export function portArg(v: string | boolean | undefined | (string | boolean)[], flag = 'port'): number | undefined {
  if (v === undefined || v === '') return undefined;
  const p = int(v as string, flag, undefined, 0);
  if (p !== undefined && p > 65535) throw new UserError(`--${flag} must be a port number (0 to 65535), got ${p}`);
  return p;
}

export const command: Command = {
  async run(argv) {
    const { values, positionals } = parse(argv, { port: { type: 'string' }, host: { type: 'string' }, open: { type: 'boolean' } }, true);
    if (values.help) {
      console.log(USAGE);
      return 0;
    }
    if (positionals.length === 0) throw new UserError('give one or more run directories: llama-ts dashboard RUN_DIR...');
    const d = await serveDashboard(positionals, { port: portArg(values.port), host: str(values.host), open: Boolean(values.open) });
    console.error('Ctrl-C to stop');
    await new Promise<void>((res) => process.once('SIGINT', res));
    await d.close();
    return 0;
  },
};
