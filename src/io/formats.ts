/**
 * Every model format in one place: detection from a path, reading into a Llama, writing a Llama out.
 *   ckpt     our checkpoint directory (model.safetensors under Meta's names + state.json), or a run directory
 *   hf       Hugging Face LlamaForCausalLM directory (config.json + safetensors, sharded or not)
 *   gguf     llama.cpp GGUF v3 file
 *   llama2c  llama.c v0 .bin (+ tokenizer.bin beside it)
 */
import type { LlamaConfig } from '../model/config.js';
import { existsSync, mkdirSync, readFileSync, statSync, closeSync, openSync, readSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Backend } from '../kernels/backend.js';
import { Llama } from '../model/llama.js';
import { tokenizerFromRef } from '../tokenizer/ref.js';
import { openCheckpoint, saveModelSafetensors, CHECKPOINT_FORMAT, type CheckpointState, type TokenizerRef } from './checkpoint.js';
import { MissingTokenizer, byteVocab, tokenizerFromVocab, validateVocab, vocabFromTokenizer, isByteVocab, type TokenizerVocab } from '../tokenizer/vocab.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { UserError } from '../util/errors.js';
import { writeFileAtomic, writeDirAtomic } from '../util/fsutil.js';
import { GGUF_MAGIC } from './gguf.js';
import { readLlamaGguf, writeLlamaGguf, type GgufExportType } from './gguf-llama.js';
import { isHfDir, readHf, writeHf } from './hf.js';
import { looksLikeLlama2c, readLlama2c, readLlama2cTokenizer, writeLlama2c, writeLlama2cTokenizer } from './llama2c.js';
import { fillModel, type FillOptions, type ModelSource } from './model-common.js';

export type ModelFormat = 'ckpt' | 'hf' | 'gguf' | 'llama2c';
export const FORMATS: ModelFormat[] = ['ckpt', 'hf', 'gguf', 'llama2c'];

function fileMagic(path: string): number {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(4);
    return readSync(fd, b, 0, 4, 0) === 4 ? b.readUInt32LE(0) : -1;
  } finally {
    closeSync(fd);
  }
}

/** Infers the format of an existing model path. */
export function detectFormat(path: string): ModelFormat {
  if (!existsSync(path)) throw new UserError(`model '${path}' does not exist`);
  if (statSync(path).isDirectory()) {
    if (existsSync(join(path, 'state.json')) || existsSync(join(path, 'checkpoints')) || existsSync(join(path, 'latest'))) return 'ckpt';
    if (isHfDir(path)) return 'hf';
    throw new UserError(`'${path}' is neither a llama-ts checkpoint (state.json) nor a Hugging Face model (config.json)`);
  }
  if (fileMagic(path) === GGUF_MAGIC) return 'gguf';
  if (looksLikeLlama2c(path)) return 'llama2c';
  if (/\.gguf$/i.test(path)) return 'gguf'; // the reader will say what is wrong with it
  if (/\.bin$/i.test(path)) return 'llama2c';
  throw new UserError(`cannot tell the format of '${path}' (expected a GGUF file, a llama2.c .bin, a checkpoint or a Hugging Face directory)`);
}

/** Format of an output path: from its extension, or a directory → ckpt unless told. */
export function formatFromOutputPath(path: string): ModelFormat | null {
  if (/\.gguf$/i.test(path)) return 'gguf';
  if (/\.bin$/i.test(path)) return 'llama2c';
  return null;
}

export function parseFormat(s: string, flag: string): ModelFormat {
  if ((FORMATS as string[]).includes(s)) return s as ModelFormat;
  throw new UserError(`--${flag} ${s}: unknown format (known: ${FORMATS.join(', ')})`);
}

function ckptSource(path: string): ModelSource {
  const ck = openCheckpoint(path);
  const c = ck.state.config;
  const tokenizer = tokenizerFromRef(ck.state.tokenizer as TokenizerRef, ck.dir);
  const vocab = vocabFromTokenizer(tokenizer, c.vocabSize);
  if (vocab) validateVocab(vocab, `checkpoint '${ck.dir}' tokenizer`);
  let cached: Llama | null = null;
  return {
    config: c, vocab, tokenizer, description: `checkpoint '${ck.dir}'`,
    tensor(name) {
      if (!cached) {
        cached = new Llama(c, { alloc: (n: number) => new Float32Array(n) } as unknown as Backend);
        ck.loadInto(cached.params);
      }
      return cached.params.get(name) as Float32Array;
    },
  };
}

export function openModelSource(path: string, format?: ModelFormat): { source: ModelSource; format: ModelFormat } {
  const f = format ?? detectFormat(path);
  switch (f) {
    case 'ckpt':
      return { source: ckptSource(path), format: f };
    case 'hf':
      if (!isHfDir(path)) throw new UserError(`'${path}' is not a Hugging Face model directory (no config.json)`);
      return { source: readHf(path), format: f };
    case 'gguf':
      return { source: readLlamaGguf(path), format: f };
    case 'llama2c': {
      const tokPath = join(dirname(path), 'tokenizer.bin');
      const src = readLlama2c(path);
      if (existsSync(tokPath)) {
        try {
          src.vocab = readLlama2cTokenizer(tokPath, src.config.vocabSize);
        } catch (e) {
          if (!(e instanceof UserError)) throw e;
          // a tokenizer.bin of another model: load the weights without it
        }
      }
      return { source: src, format: f };
    }
  }
}

export interface LoadedModel {
  model: Llama;
  vocab: TokenizerVocab | null;
  /** The vocabulary's tokenizer; a MissingTokenizer (ids only) when the files carry none. */
  tokenizer: Tokenizer;
  format: ModelFormat;
  description: string;
}

/**
 * `beforeAlloc` sees the model's config once the files are read and before the weights are allocated (a memory check).
 * Quantized weights (GGUF Q8_0, Q4_0, Q4_K, Q6_K) stay in their blocks for inference unless opts.dequantize.
 */
export function loadAnyModel(path: string, backend: Backend, format?: ModelFormat, beforeAlloc?: (config: LlamaConfig, description: string) => void, opts: FillOptions = {}): LoadedModel {
  const { source, format: f } = openModelSource(path, format);
  beforeAlloc?.(source.config, source.description);
  const model = new Llama(source.config, backend);
  fillModel(model, source, opts);
  const tokenizer = source.tokenizer ?? (source.vocab ? tokenizerFromVocab(source.vocab) : new MissingTokenizer(source.config.vocabSize, `${source.description} has no tokenizer llama-ts can read`));
  return { model, vocab: source.vocab, tokenizer, format: f, description: source.description };
}

export interface SaveOptions {
  ggufType?: GgufExportType;
  hfDtype?: 'F32' | 'F16' | 'BF16';
  hfMaxShardBytes?: number;
  name?: string;
}

/** Writes a model in a format. A missing vocabulary is the byte tokenizer's (padded to the model's size). */
export function saveModelAs(format: ModelFormat, path: string, model: Llama, vocab: TokenizerVocab | null, o: SaveOptions = {}): string[] {
  const v = vocab ?? byteVocab(model.config.vocabSize);
  switch (format) {
    case 'gguf':
      mkdirSync(dirname(path), { recursive: true });
      writeLlamaGguf(path, model, v, o.ggufType ?? 'f32', o.name);
      return [path];
    case 'hf':
      writeDirAtomic(path, (dir) => writeHf(dir, model, v, { dtype: o.hfDtype, maxShardBytes: o.hfMaxShardBytes }), ['config.json']);
      return [path];
    case 'llama2c': {
      mkdirSync(dirname(path), { recursive: true });
      writeLlama2c(path, model);
      const tok = join(dirname(path), 'tokenizer.bin');
      writeLlama2cTokenizer(tok, v);
      return [path, tok];
    }
    case 'ckpt':
      writeDirAtomic(path, (dir) => writeCkptDir(dir, model, v), ['state.json']);
      return [path];
  }
}

/** A llama-ts checkpoint directory of a model (weights, its vocabulary when not the byte tokenizer, state.json). */
function writeCkptDir(path: string, model: Llama, v: TokenizerVocab): void {
  saveModelSafetensors(join(path, 'model.safetensors'), model.params, { step: '0' });
  let tokenizer: TokenizerRef = { kind: 'bytes' };
  if (!isByteVocab(v)) {
    tokenizer = { kind: 'vocab', file: 'tokenizer.vocab.json' };
    writeFileAtomic(join(path, tokenizer.file), [JSON.stringify(v)]);
  }
  const state: CheckpointState = {
    format: CHECKPOINT_FORMAT, version: 1, step: 0, config: model.config, hyper: {}, data: null, tokenizer,
    lastLoss: null, savedAt: new Date().toISOString(),
  };
  writeFileAtomic(join(path, 'state.json'), [JSON.stringify(state, null, 1)]);
}

export { vocabFromTokenizer };
