/**
 * Tokenizer loading for the data pipeline: no path → the byte tokenizer; a `.model` path → the SentencePiece
 * model from src/tokenizer/index.ts (imported dynamically, so this file builds before that module exists).
 */
import { existsSync } from 'node:fs';
import { ByteTokenizer } from '../tokenizer/bytes.js';
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

interface SentencePieceModule {
  SentencePieceModel: { load(path: string): Tokenizer | Promise<Tokenizer> };
}

export async function loadTokenizer(path: string | undefined | null): Promise<Tokenizer> {
  if (!path || path === 'bytes') return new ByteTokenizer();
  if (!path.endsWith('.model')) throw new UserError(`tokenizer '${path}' is not a SentencePiece .model file (omit --tokenizer for the byte tokenizer)`);
  if (!existsSync(path)) throw new UserError(`tokenizer '${path}' does not exist`);
  let mod: SentencePieceModule;
  try {
    // a variable specifier keeps tsc from resolving the module before the tokenizer branch is merged
    const spec = '../tokenizer/index.js';
    mod = (await import(spec)) as SentencePieceModule;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ERR_MODULE_NOT_FOUND') throw new UserError(`SentencePiece tokenizers are not available in this build (src/tokenizer/index.ts is missing); omit --tokenizer to use bytes`);
    throw e;
  }
  if (!mod.SentencePieceModel || typeof mod.SentencePieceModel.load !== 'function') {
    throw new UserError('src/tokenizer/index.ts does not export SentencePieceModel.load(path)');
  }
  return await mod.SentencePieceModel.load(path);
}
