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
import { checkTensor, fillModel, type ModelSource, type ReadOptions } from './model-common.js';
import { FlatTensors, paramLayout, type TensorSpec } from '../model/params.js';
import type { QuantTensor } from '../kernels/ops/quant.js';
import { canMap, firstNonFinite, mapUnavailable } from '../util/mmap.js';

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
  if (/\.safetensors$/i.test(path)) return 'ckpt'; // a single-file checkpoint (io/bundle.ts); the reader says when it is not one
  if (looksLikeLlama2c(path)) return 'llama2c';
  if (/\.gguf$/i.test(path)) return 'gguf'; // the reader will say what is wrong with it
  if (/\.bin$/i.test(path)) return 'llama2c';
  throw new UserError(`cannot tell the format of '${path}' (expected a GGUF file, a llama2.c .bin, a checkpoint (directory or .safetensors file) or a Hugging Face directory)`);
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

function ckptSource(path: string, o: ReadOptions): ModelSource {
  const ck = openCheckpoint(path, o);
  const c = ck.state.config;
  const tokenizer = tokenizerFromRef(ck.state.tokenizer as TokenizerRef, ck.dir);
  const vocab = vocabFromTokenizer(tokenizer, c.vocabSize);
  if (vocab) validateVocab(vocab, `checkpoint '${ck.dir}' tokenizer`);
  const description = `checkpoint '${ck.dir}'`;
  const st = ck.model;
  if (!st) {
    // a single-file checkpoint (io/bundle.ts): read whole into one flat buffer, tensors handed out as its views
    let flat: FlatTensors | null = null;
    return {
      config: c, vocab, tokenizer, description,
      tensor(name) {
        if (!flat) ck.loadInto((flat = new FlatTensors(ck.layout, { alloc: (n: number) => new Float32Array(n) } as unknown as Backend)));
        return flat.get(name) as Float32Array;
      },
    };
  }
  return {
    config: c, vocab, tokenizer, description,
    tensor: (name) => st.readF32(name),
    mapped: st.bytes.mapped,
    check: () => st.bytes.check(),
    converted: (name) => st.converted(name),
  };
}

/** `o.map`: tensors are views of mapped files where the format allows (read-only: for inference). */
export function openModelSource(path: string, format?: ModelFormat, o: ReadOptions = {}): { source: ModelSource; format: ModelFormat } {
  const f = format ?? detectFormat(path);
  switch (f) {
    case 'ckpt':
      return { source: ckptSource(path, o), format: f };
    case 'hf':
      if (!isHfDir(path)) throw new UserError(`'${path}' is not a Hugging Face model directory (no config.json)`);
      return { source: readHf(path, o), format: f };
    case 'gguf':
      return { source: readLlamaGguf(path, o), format: f };
    case 'llama2c': {
      const tokPath = join(dirname(path), 'tokenizer.bin');
      const src = readLlama2c(path, null, o);
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
  /** The chat template the file carries (GGUF `tokenizer.chat_template`), when it has one. */
  chatTemplate?: string;
  /** True when the model runs on views of the mapped file(s) (read-only weights), false when it holds copies. */
  mapped: boolean;
}

export interface LoadOptions {
  /**
   * 'map': for inference, the weights are views of the mapped file where the format and the backend allow (the
   * native float32 backend; F32 tensors at 4-byte-aligned offsets), copies only of what must be converted (F16,
   * BF16, Q8_0 → F32; Hugging Face q/k rows permuted); the model is read-only (it cannot be trained). 'copy' (the
   * default): every tensor is read into the model's own flat float32 buffer, as training needs.
   */
  weights?: 'map' | 'copy';
  /**
   * Dequantize the weights a file stores quantized (GGUF Q8_0, Q4_0, Q4_K, Q6_K, BF16) into float32 (to convert or
   * train). Default false: they stay in their blocks (Llama.setQuantized; over the mapping when mapped) and inference
   * multiplies them with the quantized kernels.
   */
  dequantize?: boolean;
  /** Receives a few lines on how the weights were loaded: mapped or read, which tensors were copied and why. */
  verbose?: (line: string) => void;
}

/** What the loaded weights will hold in memory, for the check before loading (model/memory.ts inferenceMemory). */
export interface WeightFootprint {
  /**
   * Bytes of weights once loaded: a mapped file's float32 views and quantized blocks as stored (the file's pages,
   * which must stay resident to decode at speed), Q4_0/Q8_0 matrices counted twice (the 8-row repacked copy the
   * native backend makes), tensors converted to float32 at 4 bytes a value.
   */
  bytes: number;
  /** True when the weights are views of a mapped file: no float32 copy of the whole model is made while loading. */
  mapped: boolean;
}

/** The footprint of `source`'s weights when loaded as loadAnyModel will (mapped or into a float32 buffer). */
function weightFootprint(source: ModelSource, mapped: boolean, dequantize: boolean, bytesPerFloat: number): WeightFootprint {
  const layout = paramLayout(source.config);
  if (!mapped) return { bytes: layout.total * bytesPerFloat, mapped: false };
  let bytes = 0;
  for (const t of layout.tensors) {
    const q = !dequantize ? source.quant?.(t.name) : null;
    if (q) bytes += q.data.byteLength * ((q.type === 'Q4_0' || q.type === 'Q8_0') && t !== layout.tokEmbeddings ? 2 : 1);
    else bytes += t.size * 4;
  }
  return { bytes, mapped: true };
}

/**
 * `beforeAlloc` sees the model's config once the files are read and before the weights are allocated (a memory
 * check), with what the weights will occupy. With `o.weights = 'map'` (inference) the tensors are views of the
 * mapped file; see LoadOptions.
 */
export function loadAnyModel(path: string, backend: Backend, format?: ModelFormat, beforeAlloc?: (config: LlamaConfig, description: string, footprint: WeightFootprint) => void, o: LoadOptions = {}): LoadedModel {
  // the ref backends and builds without the addon keep the plain read path
  const map = o.weights === 'map' && backend.name === 'native' && canMap();
  const { source, format: f } = openModelSource(path, format, { map });
  if (beforeAlloc) beforeAlloc(source.config, source.description, weightFootprint(source, map && Boolean(source.mapped), Boolean(o.dequantize), backend.alloc(0).BYTES_PER_ELEMENT));
  let model: Llama;
  let releasedBytes = 0; // resident pages of mapped blocks given back (see below)
  if (map && source.mapped) {
    const layout = paramLayout(source.config);
    const views = new Map<string, Float32Array>();
    const copies = new Map<string, number>();
    const quant = new Map<TensorSpec, QuantTensor>();
    let viewBytes = 0;
    for (const t of layout.tensors) {
      const q = !o.dequantize ? source.quant?.(t.name) : null; // the embedding too: looked up row by row from its blocks
      if (q) {
        // kept in its blocks over the mapping; its float32 view is never read (zero pages, never touched)
        quant.set(t, q);
        views.set(t.name, new Float32Array(t.size));
        viewBytes += q.data.byteLength;
        continue;
      }
      const data = source.tensor(t.name);
      checkTensor(source, t, data, firstNonFinite);
      views.set(t.name, data);
      const why = source.converted?.(t.name) ?? null;
      if (why === null) viewBytes += data.byteLength;
      else copies.set(why, (copies.get(why) ?? 0) + data.byteLength);
    }
    model = new Llama(source.config, backend, { weights: FlatTensors.external(layout, views, () => source.check?.()) });
    // a weight repacked for decode is read from its copy: its mapped blocks leave the resident set (a second copy of
    // the 110M-shape Q8_0 model's 111 MiB otherwise; they stay in the page cache and fault back in if read)
    for (const [spec, q] of quant) {
      const s = model.layout.byName.get(spec.name) as TensorSpec;
      model.setQuantized(s, q);
      if (model.repacked(s)) releasedBytes += source.release?.(q.data) ?? 0;
    }
    if (o.verbose) {
      o.verbose(`weights: mapped ${source.description} read-only; ${mib(viewBytes)} used in place (no copy)`);
      for (const [why, bytes] of copies) o.verbose(`weights: copied ${mib(bytes)} (${why})`);
    }
  } else {
    model = new Llama(source.config, backend);
    fillModel(model, source, { dequantize: o.dequantize, firstNonFinite });
    o.verbose?.(`weights: read ${source.description} into the model's own float32 buffer (${mib(model.layout.total * 4)}${o.weights === 'map' ? `; not mapped: ${backend.name !== 'native' ? `the ${backend.name} backend reads` : mapUnavailable()}` : ''})`);
  }
  if (o.verbose && model.repackedBytes() > 0) {
    o.verbose(`weights: copied ${mib(model.repackedBytes())} (Q4_0/Q8_0 repacked into 8-row groups for decode; ${model.params.writable ? 'the blocks stay as loaded' : `their mapped blocks given back: ${mib(releasedBytes)} out of the resident set`})`);
  }
  const tokenizer = source.tokenizer ?? (source.vocab ? tokenizerFromVocab(source.vocab) : new MissingTokenizer(source.config.vocabSize, `${source.description} has no tokenizer llama-ts can read`));
  return { model, vocab: source.vocab, tokenizer, format: f, description: source.description, chatTemplate: source.chatTemplate, mapped: !model.params.writable };
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
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

/**
 * The tokenizer a fine-tuning run takes over from the model it starts from, and how its checkpoints name it: the
 * byte tokenizer; a llama-ts checkpoint's own file (SentencePiece .model or vocabulary JSON); otherwise the model's
 * vocabulary written once as `<runDir>/tokenizer.vocab.json`. A model without a readable tokenizer is refused.
 */
export function tokenizerForRun(path: string, loaded: LoadedModel, runDir: string): { tokenizer: Tokenizer; ref: TokenizerRef; file?: string } {
  if (loaded.format === 'ckpt') {
    const ck = openCheckpoint(path);
    const ref = ck.state.tokenizer as TokenizerRef;
    return { tokenizer: loaded.tokenizer, ref, file: ref.kind === 'bytes' ? undefined : join(ck.dir, ref.file) };
  }
  if (!loaded.vocab) throw new UserError(`${loaded.description} has no tokenizer llama-ts can read (a llama2.c .bin needs its tokenizer.bin beside it): give --tokenizer T.model`);
  if (isByteVocab(loaded.vocab)) return { tokenizer: loaded.tokenizer, ref: { kind: 'bytes' } };
  mkdirSync(runDir, { recursive: true });
  const file = join(runDir, 'tokenizer.vocab.json');
  writeFileAtomic(file, [JSON.stringify(loaded.vocab)]);
  return { tokenizer: loaded.tokenizer, ref: { kind: 'vocab', file: 'tokenizer.vocab.json' }, file };
}
