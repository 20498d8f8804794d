/** Helpers for the data-pipeline tests: temporary corpora, recipes and prepared directories. */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng } from '../../src/util/rng.js';
import { parseRecipe } from '../../src/data/recipe.js';
import { prepareData } from '../../src/data/prepare.js';

export const root = fileURLToPath(new URL('../../../', import.meta.url));
export const fixtures = join(root, 'test', 'fixtures', 'data');

export function tmp(prefix = 'llama-ts-data-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

const WORDS = ('the of and to in is was he for it with as his on be at by had are but from or have an they which one you were ' +
  'her all she there would their we him been has when who will more no if out so said what up its about into than them can only ' +
  'other new some could time these two may then do first any my now such like our over man me even most made after also did many ' +
  'before must through back years where much your way well down should because each just those people how too little state good very').split(' ');

/** A random English-looking document of about `words` words in lines of 8-15 words. */
export function randomDoc(rng: Rng, words = 80): string {
  const lines: string[] = [];
  let line: string[] = [];
  let target = 8 + rng.int(8);
  for (let i = 0; i < words; i++) {
    line.push(WORDS[rng.int(WORDS.length)]);
    if (line.length >= target) {
      lines.push(line.join(' ') + '.');
      line = [];
      target = 8 + rng.int(8);
    }
  }
  if (line.length) lines.push(line.join(' ') + '.');
  return lines.join('\n');
}

/** Writes `n` documents per source as blank-line separated text files and prepares them. */
export async function makePrepared(
  sources: { name: string; docs: number; weight?: number; epochs?: number; words?: number }[],
  opts: { seed?: number; heldOutFraction?: number; totalTokens?: number; workers?: number; shardTokens?: number } = {},
): Promise<string> {
  const dir = tmp();
  const rng = new Rng(opts.seed ?? 7);
  const recipe = {
    name: 'test', seed: 1, total_tokens: opts.totalTokens ?? 1e6, held_out_fraction: opts.heldOutFraction ?? 0.1,
    shard_tokens: opts.shardTokens ?? 4096,
    sources: sources.map((s) => {
      mkdirSync(join(dir, 'raw'), { recursive: true });
      const file = join(dir, 'raw', `${s.name}.txt`);
      // a per-source marker word keeps documents of different sources distinct
      writeFileSync(file, Array.from({ length: s.docs }, (_, i) => `${s.name} document ${i}.\n${randomDoc(rng, s.words ?? 80)}`).join('\n\n') + '\n');
      return { name: s.name, format: 'text', path: file, separator: 'blank-line', weight: s.weight, epochs: s.epochs };
    }),
  };
  const out = join(dir, 'prepared');
  await prepareData({ recipe: parseRecipe(recipe, dir), out, quiet: true, workers: opts.workers ?? 0 });
  return out;
}

/** A small text file of 40 blank-line separated paragraphs (the trainer tests' corpus); returns its path. */
export function paragraphCorpus(): string {
  const path = join(tmp('llama-ts-test-'), 'text.txt');
  const paras: string[] = [];
  for (let i = 0; i < 40; i++) paras.push(`Paragraph ${i}: the quick brown fox jumps over the lazy dog ${i % 7} times, and then it rests.`);
  writeFileSync(path, paras.join('\n\n'));
  return path;
}
