/**
 * LLaMA models in GGUF, as llama.cpp's `llama` architecture expects them: metadata `llama.*`, tokenizer
 * `tokenizer.ggml.*` (SentencePiece-style vocabulary, model "llama"), tensors `token_embd`, `blk.N.attn_q` ...
 *
 * RoPE: llama.cpp's llama architecture uses its "normal" rope mode, which rotates adjacent pairs like Meta's code,
 * and convert_hf_to_gguf.py un-permutes Hugging Face q/k back to Meta's row order. Our weights are already in
 * Meta's order, so they are written as they are (checked numerically against llama.cpp in test/gguf-llamacpp).
 * Reading is gguf-model.ts (Node-free, shared with the page); this file adds the paths.
 */
import { ffnHiddenDim, headDim } from '../model/config.js';
import type { Llama } from '../model/llama.js';
import { validateVocab, type TokenizerVocab } from '../tokenizer/vocab.js';
import { GgufValueType as T, readGguf, writeGguf, type GgmlTypeName, type GgufKv } from './gguf.js';
import { llamaGgufSource } from './gguf-model.js';
import { f32view, ggufName, type ModelSource, type ReadOptions } from './model-common.js';

export { ggufVocab, llamaGgufSource } from './gguf-model.js';

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

export function readLlamaGguf(path: string, o: ReadOptions = {}): ModelSource {
  return llamaGgufSource(readGguf(path, { map: o.map }));
}
