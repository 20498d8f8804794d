/**
 * Text to training data without the file system (the browser page uses this; data/text.ts reads files into it):
 * documents separated by blank lines, split into train / held-out by document, tokenized into one stream each with
 * BOS before every document. The same text gives the same streams, so a run continues exactly in Node or a page.
 */
import { UserError } from '../util/errors.js';
import { splitDocuments, tokenizeDocuments, TokenStreamSource, type BatchSource } from './source.js';
import type { Tokenizer } from '../tokenizer/types.js';

/** The documents of a text: blank-line separated, trimmed, empty ones dropped. Throws a UserError when none is left. */
export function documentsFromText(text: string, what: string): string[] {
  const docs = text.split(/\n\s*\n/).map((d) => d.trim()).filter((d) => d.length > 0);
  if (docs.length === 0) throw new UserError(`data ${what} is empty`);
  return docs;
}

export interface TextData {
  train: BatchSource;
  heldOut: () => BatchSource;
  trainTokens: number;
  heldOutTokens: number;
}

export function textDataFromDocuments(docs: string[], what: string, tok: Tokenizer, seed: number, seq: number, heldOutFraction = 0.1): TextData {
  const { train, heldOut } = splitDocuments(docs, heldOutFraction);
  const trainStream = tokenizeDocuments(train, tok);
  const heldStream = tokenizeDocuments(heldOut, tok);
  for (const [name, s] of [['training', trainStream], ['held-out', heldStream]] as const) {
    if (s.length < seq + 1) throw new UserError(`data ${what} is too small: its ${name} split has ${s.length} tokens, fewer than seq ${seq} + 1`);
  }
  return {
    train: new TokenStreamSource(trainStream, seed),
    heldOut: () => new TokenStreamSource(heldStream, seed ^ 0x5eed),
    trainTokens: trainStream.length,
    heldOutTokens: heldStream.length,
  };
}
