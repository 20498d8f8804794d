/**
 * The memory this machine can give a run: LLAMA_TS_MEMORY_LIMIT when set (bytes, or 24Gi, 512Mi …: tests and
 * shared machines), else the kernel's MemAvailable (/proc/meminfo), else os.freemem(); a cgroup limit
 * (/sys/fs/cgroup/memory.max less memory.current) lowers it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { freemem } from 'node:os';
import { parseQuantity } from './parse.js';
import { UserError } from './errors.js';

export const MEMORY_LIMIT_ENV = 'LLAMA_TS_MEMORY_LIMIT';

export interface Available {
  bytes: number;
  /** Where the number comes from, for messages. */
  source: string;
}

function readNumber(path: string, pattern?: RegExp): number | null {
  // a missing file (no cgroup v2 limit here) without the thrown ENOENT, whose first construction costs ~1.5 ms of start-up
  if (!existsSync(path)) return null;
  try {
    const text = readFileSync(path, 'utf8');
    const m = pattern ? pattern.exec(text) : /^\s*(\d+)\s*$/.exec(text);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

export function availableMemory(env: NodeJS.ProcessEnv = process.env): Available {
  const limit = env[MEMORY_LIMIT_ENV];
  if (limit !== undefined && limit !== '') {
    try {
      return { bytes: parseQuantity(limit, MEMORY_LIMIT_ENV), source: MEMORY_LIMIT_ENV };
    } catch {
      throw new UserError(`${MEMORY_LIMIT_ENV} expects bytes such as 25769803776 or 24Gi, got '${limit}'`);
    }
  }
  const kb = readNumber('/proc/meminfo', /^MemAvailable:\s+(\d+) kB/m);
  let a: Available = kb !== null ? { bytes: kb * 1024, source: 'MemAvailable' } : { bytes: freemem(), source: 'free memory' };
  const max = readNumber('/sys/fs/cgroup/memory.max');
  const cur = readNumber('/sys/fs/cgroup/memory.current');
  if (max !== null && cur !== null && max - cur < a.bytes) a = { bytes: Math.max(0, max - cur), source: 'cgroup memory.max' };
  return a;
}

/**
 * This process's peak resident set in bytes: /proc/self/status VmHWM (the high-water mark of its own address space),
 * else getrusage's maxrss. Not maxrss first: Linux folds the forked parent's resident set into the child's maxrss at
 * exec, so a child spawned by a large process (bench/memory-precision.ts after its in-process speed section, 4-6 GB)
 * reports at least the parent's size (measured: a seq-8192 step read 6.0 GiB that way, 1.6 GiB by VmHWM).
 */
export function peakRssBytes(): number {
  const kib = readNumber('/proc/self/status', /VmHWM:\s+(\d+)\s*kB/);
  return (kib ?? process.resourceUsage().maxRSS) * 1024;
}
