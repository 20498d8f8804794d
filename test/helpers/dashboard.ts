/** Run directories as the trainer writes them (train.jsonl and run.json), for the dashboard tests. */
import { appendFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import type { RunInfo } from '../../src/training/metrics.js';

/** One train.jsonl step line: a loss falling with the step, lr 3e-4 after warmup. */
export function stepLine(step: number, lr = 3e-4): string {
  const ms = { forward: 10 + (step % 3), loss: 2, backward: 20, optimizer: 3, total: 35 + (step % 3), comm: 0 };
  return JSON.stringify({ step, loss: 5.5 * Math.exp(-step / 40) + 1.2 + 0.05 * Math.sin(step), lr: step < 10 ? (lr * step) / 10 : lr, grad_norm: 1 + 2 / step, tokens_per_s: 3600 + 10 * (step % 7), mfu: 0.31, ms }) + '\n';
}

export function info(o: Partial<RunInfo> = {}): RunInfo {
  const now = new Date().toISOString();
  return {
    pid: process.pid, host: hostname(), started: now, updated: now, status: 'running', startStep: 0, stopAt: 100, steps: 100, world: 1, tokensPerStep: 1024,
    config: { dim: 64, nLayers: 2 }, hyper: { lr: 3e-4, batch: 8, seq: 128, accum: 1 }, checkpoint: null, error: null, ...o,
  };
}

/** A run dir with `steps` step lines, an evaluation every 10 steps and run.json. */
export function fakeRun(dir: string, steps: number, o: Partial<RunInfo> = {}, lr = 3e-4): string {
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true });
  let text = JSON.stringify({ step: 0, eval_loss: 6.6 }) + '\n';
  for (let s = 1; s <= steps; s++) {
    text += stepLine(s, lr);
    if (s % 10 === 0) text += JSON.stringify({ step: s, eval_loss: 5.5 * Math.exp(-s / 40) + 1.4 }) + '\n';
  }
  writeFileSync(join(dir, 'train.jsonl'), text);
  writeFileSync(join(dir, 'run.json'), JSON.stringify(info(o)));
  return dir;
}

export function append(dir: string, text: string): void {
  appendFileSync(join(dir, 'train.jsonl'), text);
}

/** The pid of a process that has exited (for a crashed run). */
export function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' });
  return Number(r.stdout.trim());
}
