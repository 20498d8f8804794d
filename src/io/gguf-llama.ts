/**
 * LLaMA models in GGUF, as llama.cpp's `llama` architecture expects them: metadata `llama.*`, tokenizer
 * `tokenizer.ggml.*` (SentencePiece-style vocabulary, model "llama"), tensors `token_embd`, `blk.N.attn_q` ...
 *
 * RoPE: llama.cpp's llama architecture uses its "normal" rope mode, which rotates adjacent pairs like Meta's code,
 * and convert_hf_to_gguf.py un-permutes Hugging Face q/k back to Meta's row order. Our weights are already in
 * Meta's order, so they are written as they are (checked numerically against llama.cpp in test/gguf-llamacpp).
 */
import { type LlamaConfig, ffnHiddenDim, headDim } from '../model/config.js';
import type { Llama } from '../model/llama.js';
import { paramLayout } from '../model/params.js';
import { TokenType, validateVocab, type TokenizerVocab } from '../tokenizer/vocab.js';
import { UserError } from '../util/errors.js';
import { GgufValueType as T, readGguf, writeGguf, type GgmlTypeName, type GgufKv, type GgufFile, type GgufValue } from './gguf.js';
import { checkConfigFits, checkShapes, configWithHidden, f32view, ggufName, type ModelSource, type ReadOptions } from './model-common.js';

export type GgufExportType = 'f32' | 'f16' | 'bf16' | 'q8_0' | 'q4_0' | 'q4_k';
export const GGUF_EXPORT_TYPES: GgufExportType[] = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_k'];

/** llama.cpp's llama_ftype of each export (general.file_type): q4_k is its Q4_K_S mix. */
const FILE_TYPE: Record<GgufExportType, number> = { f32: 0, f16: 1, q8_0: 7, q4_0: 2, q4_k: 14, bf16: 32 };

/**
 * The ggml type a tensor of shape [rows, cols] is written as. Norm gains stay F32. As llama.cpp's quantizer does,
 * the output head of the 4-bit exports is kept at higher precision (Q6_K, or Q8_0 when its rows are not a multiple
 * of 256), and a row length the block size does not divide falls back (Q4_K → Q4_0 → F16, Q8_0 → F16).
 */
export function exportTensorType(type: GgufExportType, name: string, shape: number[]): GgmlTypeName {
  if (shape.length !== 2) return 'F32';
  const cols = shape[1];
  const by32 = cols % 32 === 0, by256 = cols % 256 === 0;
  switch (type) {
    case 'f32': return 'F32';
    case 'f16': return 'F16';
    case 'bf16': return 'BF16';
    case 'q8_0': return by32 ? 'Q8_0' : 'F16';
    case 'q4_0':
    case 'q4_k':
      if (name === 'output.weight') return by256 ? 'Q6_K' : by32 ? 'Q8_0' : 'F16';
      if (type === 'q4_k' && by256) return 'Q4_K';
      return by32 ? 'Q4_0' : 'F16';
  }
}

export function writeLlamaGguf(path: string, model: Llama, vocab: TokenizerVocab, type: GgufExportType = 'f32', name = 'llama-ts model'): void {
  const c = model.config;
  validateVocab(vocab, 'tokenizer');
  if (vocab.pieces.length !== c.vocabSize) throw new Error(`vocabulary has ${vocab.pieces.length} pieces for a model vocabulary of ${c.vocabSize}`);
  const u32 = (key: string, value: number): GgufKv => ({ key, type: T.UINT32, value });
  const f32 = (key: string, value: number): GgufKv => ({ key, type: T.FLOAT32, value });
  const str = (key: string, value: string): GgufKv => ({ key, type: T.STRING, value });
  const kvs: GgufKv[] = [
    str('general.architecture', 'llama'),
    str('general.name', name),
    u32('general.alignment', 32),
    u32('general.file_type', FILE_TYPE[type]),
    u32('llama.vocab_size', c.vocabSize),
    u32('llama.context_length', c.maxSeqLen),
    u32('llama.embedding_length', c.dim),
    u32('llama.block_count', c.nLayers),
    u32('llama.feed_forward_length', ffnHiddenDim(c)),
    u32('llama.rope.dimension_count', headDim(c)),
    u32('llama.attention.head_count', c.nHeads),
    u32('llama.attention.head_count_kv', c.nKvHeads),
    f32('llama.attention.layer_norm_rms_epsilon', c.normEps),
    f32('llama.rope.freq_base', c.ropeTheta),
    str('llama_ts.config', JSON.stringify(c)),
    str('tokenizer.ggml.model', 'llama'),
    { key: 'tokenizer.ggml.tokens', type: T.ARRAY, elemType: T.STRING, value: vocab.pieces },
    { key: 'tokenizer.ggml.scores', type: T.ARRAY, elemType: T.FLOAT32, value: vocab.scores },
    { key: 'tokenizer.ggml.token_type', type: T.ARRAY, elemType: T.INT32, value: vocab.types },
    u32('tokenizer.ggml.bos_token_id', vocab.bos),
    u32('tokenizer.ggml.eos_token_id', vocab.eos),
    u32('tokenizer.ggml.unknown_token_id', vocab.unk),
    { key: 'tokenizer.ggml.add_bos_token', type: T.BOOL, value: true },
    { key: 'tokenizer.ggml.add_eos_token', type: T.BOOL, value: false },
  ];
  const tensors = model.layout.tensors.map((t) => {
    if (model.quantized(t)) throw new Error(`writeLlamaGguf: '${t.name}' is held quantized; load the model with dequantize to write it`);
    return { name: ggufName(t.name), shape: t.shape, data: f32view(model.params.view(t)), type: exportTensorType(type, t.name, t.shape) };
  });
  writeGguf(path, kvs, tensors);
}

function num(f: GgufFile, key: string, dflt?: number): number {
  const v = f.metadata.get(key);
  if (v === undefined) {
    if (dflt !== undefined) return dflt;
    throw new UserError(`GGUF file '${f.path}' lacks metadata '${key}'`);
  }
  if (Array.isArray(v)) throw new UserError(`GGUF file '${f.path}': '${key}' is an array (per-layer values are not supported)`);
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new UserError(`GGUF file '${f.path}': '${key}' is not a number`);
  // float32 values (eps, rope base) come back as the nearest double of a float: take the shortest decimal
  return Number.isInteger(v) ? v : Number(v.toPrecision(7));
}

function arr(f: GgufFile, key: string): GgufValue[] | null {
  const v = f.metadata.get(key);
  if (v === undefined) return null;
  if (!Array.isArray(v)) throw new UserError(`GGUF file '${f.path}': '${key}' is not an array`);
  return v;
}

export function ggufVocab(f: GgufFile, vocabSize: number): TokenizerVocab | null {
  const tokens = arr(f, 'tokenizer.ggml.tokens');
  if (!tokens) return null;
  const model = f.metadata.get('tokenizer.ggml.model');
  if (model !== undefined && model !== 'llama') return null; // e.g. 'gpt2' BPE: weights load, text needs token ids
  const scores = arr(f, 'tokenizer.ggml.scores') ?? tokens.map(() => 0);
  const types = arr(f, 'tokenizer.ggml.token_type') ?? tokens.map(() => TokenType.NORMAL);
  if (tokens.length !== vocabSize) throw new UserError(`GGUF file '${f.path}': ${tokens.length} tokenizer pieces for a vocabulary of ${vocabSize}`);
  const v: TokenizerVocab = {
    pieces: tokens.map(String), scores: scores.map(Number), types: types.map(Number),
    bos: num(f, 'tokenizer.ggml.bos_token_id', 1), eos: num(f, 'tokenizer.ggml.eos_token_id', 2), unk: num(f, 'tokenizer.ggml.unknown_token_id', 0),
  };
  validateVocab(v, `GGUF file '${f.path}' tokenizer`);
  return v;
}

export function readLlamaGguf(path: string, o: ReadOptions = {}): ModelSource {
  const f = readGguf(path, { map: o.map });
  const what = `GGUF file '${path}'`;
  const arch = f.metadata.get('general.architecture');
  if (arch !== 'llama') throw new UserError(`${what}: architecture '${String(arch)}' is not supported (only 'llama')`);
  const scaling = f.metadata.get('llama.rope.scaling.type');
  if (scaling !== undefined && scaling !== 'none') throw new UserError(`${what}: RoPE scaling '${String(scaling)}' is not supported`);
  const emb = f.tensors.get('token_embd.weight');
  if (!emb) throw new UserError(`${what}: missing tensor 'token_embd.weight'`);
  if (emb.shape.length !== 2) throw new UserError(`${what}: token_embd.weight must be 2-D`);
  const dim = num(f, 'llama.embedding_length');
  const nHeads = num(f, 'llama.attention.head_count');
  const base: Partial<LlamaConfig> = {
    dim, nLayers: num(f, 'llama.block_count'), nHeads, nKvHeads: num(f, 'llama.attention.head_count_kv', nHeads),
    vocabSize: emb.shape[0], normEps: num(f, 'llama.attention.layer_norm_rms_epsilon', 1e-5), ropeTheta: num(f, 'llama.rope.freq_base', 10000),
    maxSeqLen: num(f, 'llama.context_length', 2048),
  };
  // our own exporter records the exact config; use its rounding parameters when they agree with the file
  let config = configWithHidden(base, num(f, 'llama.feed_forward_length'), what);
  const ours = f.metadata.get('llama_ts.config');
  if (typeof ours === 'string') {
    try {
      const c = JSON.parse(ours) as LlamaConfig;
      const cand = { ...config, multipleOf: c.multipleOf, ffnDimMultiplier: c.ffnDimMultiplier };
      if (ffnHiddenDim(cand) === ffnHiddenDim(config)) config = cand;
    } catch {
      // ignore: the llama.* keys are authoritative
    }
  }
  const rd = num(f, 'llama.rope.dimension_count', dim / nHeads);
  if (rd !== headDim(config)) throw new UserError(`${what}: partial rotary embeddings (rope.dimension_count ${rd} of head size ${headDim(config)}) are not supported`);
  const tied = !f.tensors.has('output.weight');
  const fileName = (n: string) => (tied && n === 'output.weight' ? 'token_embd.weight' : ggufName(n));
  checkConfigFits(what, config, f.tensors.size);
  checkShapes(what, config, (n) => {
    const t = f.tensors.get(tied && n === 'output.weight' ? 'token_embd.weight' : ggufName(n));
    return t ? t.shape : null;
  }, ggufName);
  const known = new Set(paramLayout(config).tensors.map((t) => ggufName(t.name)));
  for (const n of f.tensors.keys()) {
    if (!known.has(n) && !/rope_freqs/.test(n)) throw new UserError(`${what}: unexpected tensor '${n}' (not part of a ${config.nLayers}-layer llama)`);
  }
  return {
    config,
    vocab: ggufVocab(f, config.vocabSize),
    description: what,
    chatTemplate: typeof f.metadata.get('tokenizer.chat_template') === 'string' ? (f.metadata.get('tokenizer.chat_template') as string) : undefined,
    tensor: (n) => f.readF32(fileName(n)),
    quant: (n) => f.readQuant(fileName(n)),
    mapped: f.bytes.mapped,
    check: () => f.bytes.check(),
    converted(n) {
      const t = f.tensors.get(fileName(n));
      if (t && t.type !== 'F32') return `${t.type} → F32`;
      return f.bytes.mapped && (f.dataStart + (t?.offset ?? 0)) % 4 === 0 ? null : 'read';
    },
  };
}
