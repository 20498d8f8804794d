/**
 * Plain-text training data for the trainer: a UTF-8 file (documents separated by blank lines), a directory of
 * .txt files (one document each), or the bundled Brown corpus (`brown`). Tokenized into one stream with BOS
 * before each document and split into train / held-out by document.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../util/errors.js';
import { brownDocuments } from './brown.js';
import { splitDocuments, tokenizeDocuments, TokenStreamSource, type BatchSource } from './source.js';
import type { Tokenizer } from '../tokenizer/types.js';

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
    docs = readFileSync(path, 'utf8').split(/\n\s*\n/);
  }
  docs = docs.map((d) => d.trim()).filter((d) => d.length > 0);
  if (docs.length === 0) throw new UserError(`data '${path}' is empty`);
  return docs;
}

export interface TextData {
  train: BatchSource;
  heldOut: () => BatchSource;
  trainTokens: number;
  heldOutTokens: number;
}

export function prepareTextData(path: string, tok: Tokenizer, seed: number, seq: number, heldOutFraction = 0.1): TextData {
  const { train, heldOut } = splitDocuments(readDocuments(path), heldOutFraction);
  const trainStream = tokenizeDocuments(train, tok);
  const heldStream = tokenizeDocuments(heldOut, tok);
  for (const [name, s] of [['training', trainStream], ['held-out', heldStream]] as const) {
    if (s.length < seq + 1) throw new UserError(`data '${path}' is too small: its ${name} split has ${s.length} tokens, fewer than seq ${seq} + 1`);
  }
  return {
    train: new TokenStreamSource(trainStream, seed),
    heldOut: () => new TokenStreamSource(heldStream, seed ^ 0x5eed),
    trainTokens: trainStream.length,
    heldOutTokens: heldStream.length,
  };
}
