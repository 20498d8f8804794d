/**
 * Plain-text training data for the trainer: a UTF-8 file (documents separated by blank lines), a directory of
 * .txt files (one document each), or the bundled Brown corpus (`brown`). Tokenized into one stream with BOS
 * before each document and split into train / held-out by document.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../util/errors.js';
import { brownDocuments } from './brown.js';
import { documentsFromText, textDataFromDocuments, type TextData } from './documents.js';
import type { Tokenizer } from '../tokenizer/types.js';

export type { TextData };

export function readDocuments(path: string): string[] {
  if (path === 'brown') return brownDocuments();
  if (!existsSync(path)) throw new UserError(`data '${path}' does not exist`);
  const st = statSync(path);
  let docs: string[];
  if (st.isDirectory()) {
    const files = readdirSync(path).filter((f) => f.endsWith('.txt')).sort();
    if (files.length === 0) throw new UserError(`data directory '${path}' has no .txt files`);
    docs = files.map((f) => readFileSync(join(path, f), 'utf8'));
  } else {
    return documentsFromText(readFileSync(path, 'utf8'), `'${path}'`);
  }
  docs = docs.map((d) => d.trim()).filter((d) => d.length > 0);
  if (docs.length === 0) throw new UserError(`data '${path}' is empty`);
  return docs;
}

export function prepareTextData(path: string, tok: Tokenizer, seed: number, seq: number, heldOutFraction = 0.1): TextData {
  return textDataFromDocuments(readDocuments(path), `'${path}'`, tok, seed, seq, heldOutFraction);
}
