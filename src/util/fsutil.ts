/** Crash-safe file writes: write a temporary sibling, fsync, then rename over the target. */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';

export function writeFileAtomic(path: string, chunks: (Uint8Array | string)[]): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    for (const c of chunks) {
      const buf = typeof c === 'string' ? Buffer.from(c, 'utf8') : c;
      let off = 0;
      while (off < buf.byteLength) off += writeSync(fd, buf, off, buf.byteLength - off);
    }
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);
}

/** fsync a directory so a rename inside it is durable. */
export function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    fsyncSync(fd);
    closeSync(fd);
  } catch {
    // not supported on every platform; the rename itself is still atomic
  }
}

export function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * Writes a directory of files crash-safely: `fill` writes everything into a temporary sibling, which then becomes
 * `path` by one rename (a new directory), or whose files are renamed into `path` one by one (an existing
 * directory, whose other files stay). A failure while writing (disk full, a bad input found late) removes the
 * temporary directory and leaves `path` as it was: never an empty or partial directory that looks like output.
 */
export function writeDirAtomic(path: string, fill: (dir: string) => void, last: readonly string[] = []): void {
  const tmp = `${path.replace(/[/\\]+$/, '')}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(dirname(tmp), { recursive: true });
  mkdirSync(tmp);
  try {
    fill(tmp);
    fsyncDir(tmp);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  if (!existsSync(path)) {
    renameSync(tmp, path);
  } else {
    // the files that mark the directory as a model (config.json, state.json) are moved in last
    const names = readdirSync(tmp).sort((a, b) => Number(last.includes(a)) - Number(last.includes(b)));
    for (const name of names) {
      const target = join(path, name);
      if (existsSync(target) && statSync(target).isDirectory()) rmSync(target, { recursive: true, force: true });
      renameSync(join(tmp, name), target);
    }
    rmSync(tmp, { recursive: true, force: true });
    fsyncDir(path);
  }
  fsyncDir(dirname(path));
}
