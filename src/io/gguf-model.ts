/**
 * A LLaMA model from a parsed GGUF file (gguf-read.ts), as llama.cpp's `llama` architecture lays it out: metadata
 * `llama.*`, tokenizer `tokenizer.ggml.*` (SentencePiece-style vocabulary, model "llama"), tensors `token_embd`,
 * `blk.N.attn_q` ... Node-free: `readLlamaGguf` (gguf-llama.ts) reads a path with it, the page a dropped file's bytes.
 */
import { type LlamaConfig, ffnHiddenDim, headDim } from '../model/config.js';
import { paramLayout } from '../model/params.js';
import { TokenType, validateVocab, type TokenizerVocab } from '../tokenizer/vocab.js';
import { UserError } from '../util/errors.js';
import type { GgufFile, GgufValue } from './gguf-read.js';
import { checkConfigFits, checkShapes, configWithHidden, ggufName, type ModelSource } from './model-common.js';

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

/** The model a GGUF file holds (config checked against every tensor's shape; tensors read when asked for). */
export function llamaGgufSource(f: GgufFile): ModelSource {
  const what = `GGUF file '${f.path}'`;
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
    release: (b) => f.bytes.release(b),
    converted(n) {
      const t = f.tensors.get(fileName(n));
      if (t && t.type !== 'F32') return `${t.type} → F32`;
      return f.bytes.mapped && (f.dataStart + (t?.offset ?? 0)) % 4 === 0 ? null : 'read';
    },
  };
}
