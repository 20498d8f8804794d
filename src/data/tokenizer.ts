/**
 * Tokenizer loading for the data pipeline: no path → the byte tokenizer; a `.model` path → the SentencePiece
 * model (src/tokenizer/model.ts).
 */
import { existsSync } from 'node:fs';
import { ByteTokenizer } from '../tokenizer/bytes.js';
import { SentencePieceModel } from '../tokenizer/model.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { UserError } from '../util/errors.js';

export interface TokenizerInfo {
  kind: 'bytes' | 'sentencepiece';
  path: string | null;
  vocabSize: number;
  bosId: number;
  eosId: number;
}

export function describeTokenizer(tok: Tokenizer, path: string | undefined | null): TokenizerInfo {
  return { kind: path ? 'sentencepiece' : 'bytes', path: path ?? null, vocabSize: tok.vocabSize, bosId: tok.bosId, eosId: tok.eosId };
}

export async function loadTokenizer(path: string | undefined | null): Promise<Tokenizer> {
  if (!path || path === 'bytes') return new ByteTokenizer();
  if (!path.endsWith('.model')) throw new UserError(`tokenizer '${path}' is not a SentencePiece .model file (omit --tokenizer for the byte tokenizer)`);
  if (!existsSync(path)) throw new UserError(`tokenizer '${path}' does not exist`);
  return SentencePieceModel.load(path);
}
