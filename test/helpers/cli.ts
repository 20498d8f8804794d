/** Running the built CLI from tests, and the shared check for user mistakes. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

export const root = fileURLToPath(new URL('../../../', import.meta.url));
export const bin = join(root, 'bin', 'llama-ts.js');

export function runCli(args: string[], input?: string, env?: Record<string, string>): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', cwd: root, input, env: env ? { ...process.env, ...env } : undefined });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The command fails with exit 2, nothing on stdout, and exactly one `llama-ts: error:` line matching `re` (no stack trace). */
export function failsWithOneLine(args: string[], re: RegExp, env?: Record<string, string>): void {
  const r = runCli(args, undefined, env);
  assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}, stderr ${r.stderr}`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line expected, got: ${r.stderr}`);
  assert.match(lines[0], /^llama-ts: error: /);
  assert.match(lines[0], re);
  assert.equal(r.stdout, '');
}
