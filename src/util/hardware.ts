/** Limits that follow from the machine: how many threads a pool may sensibly have. */
import { availableParallelism } from 'node:os';
import { UserError, quote } from './errors.js';

/**
 * The most threads a pool of this process may have: 4 × the CPUs it may run on (at least 8, at most 1024). More only
 * oversubscribes the cores (a 2-step run with 1000 threads took 17× longer) and costs a stack per thread.
 */
export function maxThreads(): number {
  return Math.min(1024, Math.max(8, 4 * availableParallelism()));
}

/** Throws a one-line UserError unless `n` threads (from `what`, e.g. '--threads') is within 1..maxThreads(). */
export function checkThreadCount(n: number, what: string): number {
  const max = maxThreads();
  if (n > max) throw new UserError(`${what} ${n} is more than this machine can use: at most ${max} (4 × the ${availableParallelism()} CPUs available)`);
  return n;
}

/**
 * LLAMA_TS_THREADS, the native pool size: undefined when unset or empty (the default, one thread per CPU). A value
 * that is not a positive integer is refused with a one-line UserError; one above maxThreads() is clamped to it, and
 * `notice` receives a one-line notice saying so.
 */
export function threadsFromEnv(notice: (line: string) => void): number | undefined {
  const text = process.env.LLAMA_TS_THREADS;
  if (text === undefined || text.trim() === '') return undefined;
  const n = Number(text);
  if (!/^\s*\d+\s*$/.test(text) || !Number.isSafeInteger(n) || n < 1) {
    throw new UserError(`LLAMA_TS_THREADS must be a positive integer (threads of the native kernels), got ${quote(text)}`);
  }
  const max = maxThreads();
  if (n <= max) return n;
  notice(`LLAMA_TS_THREADS=${n} is more than this machine can use; using ${max} threads (4 × the ${availableParallelism()} CPUs available)`);
  return max;
}
