/**
 * What every model format reader produces and every writer consumes. Node-free (the page fills its model from a
 * dropped GGUF file through fillModel): the CLI passes the native non-finite scan of util/mmap.ts.
 */
import type { Tokenizer } from '../tokenizer/types.js';
import { ffnHiddenDim, makeConfig, type LlamaConfig } from '../model/config.js';
import type { Llama } from '../model/llama.js';
import { paramLayout, type TensorSpec } from '../model/params.js';
import { firstNonFiniteJs } from '../util/finite.js';
import type { TokenizerVocab } from '../tokenizer/vocab.js';
import { UserError } from '../util/errors.js';
import type { QuantTensor } from '../kernels/ops/quant.js';

export interface ModelSource {
  config: LlamaConfig;
  /** A tensor under Meta's name (see model/params.ts), float32, row-major in Meta's layout. */
  tensor(name: string): Float32Array;
  vocab: TokenizerVocab | null;
  /** The exact tokenizer when the source carries one (a checkpoint's SentencePiece model); else built from vocab. */
  tokenizer?: Tokenizer;
  /** What was read, for messages. */
  description: string;
  /**
   * A 2-D weight in the quantized block layout the file stores it in (over the file's bytes, not dequantized), or
   * null when it is stored otherwise. Only formats holding quantized tensors (GGUF) have it.
   */
  quant?(name: string): QuantTensor | null;
  /** The chat template the file carries (GGUF `tokenizer.chat_template`, a Jinja source), when it has one. */
  chatTemplate?: string;
  /** True when tensor() hands out views of a mapped file (read-only: inference only), false or absent: copies. */
  mapped?: boolean;
  /** Why tensor(name) is a copy rather than a view of the mapping ('F16 → F32', ...), or null for a view. */
  converted?(name: string): string | null;
  /** Throws when a mapped file changed under the views (util/mmap.ts FileBytes.check). */
  check?(): void;
  /**
   * Gives back the resident pages under a quantized tensor's mapped bytes once the model keeps a converted copy
   * (util/mmap.ts FileBytes.release); returns the bytes released, 0 when nothing is mapped.
   */
  release?(bytes: Uint8Array): number;
}

/** How a reader opens its files: `map` asks for views of mapped files (util/mmap.ts) where the format allows. */
export interface ReadOptions {
  map?: boolean;
}

export interface FillOptions {
  /** Dequantize quantized weights into params (to convert or train) instead of keeping their blocks (default false). */
  dequantize?: boolean;
  /** The scan for NaN and ±Infinity (default a plain loop; io/formats.ts passes the native one of util/mmap.ts). */
  firstNonFinite?: FiniteScan;
}

/** Index of the first non-finite value of an array, or -1. */
export type FiniteScan = (a: Float32Array) => number;

/**
 * Copies every tensor of a source into a model, checking sizes. A weight the source holds quantized stays in its
 * blocks (model.setQuantized; its float32 params view is not written) unless opts.dequantize; so does the embedding
 * table, whose rows are dequantized as tokens look them up.
 */
export function fillModel(model: Llama, src: ModelSource, opts: FillOptions = {}): void {
  for (const t of model.layout.tensors) {
    const q = !opts.dequantize && src.quant ? src.quant(t.name) : null;
    if (q) {
      model.setQuantized(t, q);
      continue;
    }
    const data = src.tensor(t.name);
    checkTensor(src, t, data, opts.firstNonFinite);
    model.params.view(t).set(data);
  }
}

/**
 * Checks a config's layer count against the number of tensors a file lists — arithmetic only, no loop over layers
 * and no allocation — so a header claiming 10^8 layers fails at once with one line instead of building 10^8
 * layers' worth of tensor descriptions. Every layer needs 9 tensors; a config with more layers than the file has
 * tensors is certainly wrong. Below that bound the work of checkShapes (which names the first missing or
 * mis-shaped tensor) is bounded by the file's own tensor list, and the shapes it accepts are bounded by the
 * file's bytes (each reader checks shapes against data extents). Call it before paramLayout(config).
 */
export function checkConfigFits(description: string, config: LlamaConfig, fileTensors: number): void {
  if (!(config.nLayers <= fileTensors)) {
    throw new UserError(`${description}: the config's ${config.nLayers} layers need at least ${9 * config.nLayers + 2} tensors but the file lists ${fileTensors}`);
  }
}

/**
 * Checks one tensor of a source: its size against the layout's, every value finite (a NaN or ±Infinity weight
 * makes every logit NaN: scores and generations would be silently empty), by `scan` (one pass, no allocation).
 */
export function checkTensor(src: ModelSource, t: TensorSpec, data: Float32Array, scan: FiniteScan = firstNonFiniteJs): void {
  if (data.length !== t.size) throw new UserError(`${src.description}: tensor '${t.name}' has ${data.length} values, the config needs ${t.size} ([${t.shape}])`);
  const bad = scan(data);
  if (bad >= 0) throw new UserError(`${src.description}: tensor '${t.name}' holds a non-finite value (${data[bad]} at index ${bad}): the file is corrupt`);
}
/** Checks a reader's shapes against the config before any data is read. */
export function checkShapes(description: string, config: LlamaConfig, shapeOf: (metaName: string) => number[] | null, fileName: (metaName: string) => string): void {
  for (const t of paramLayout(config).tensors) {
    const s = shapeOf(t.name);
    if (!s) throw new UserError(`${description}: missing tensor '${fileName(t.name)}'`);
    if (s.join('x') !== t.shape.join('x')) throw new UserError(`${description}: tensor '${fileName(t.name)}' has shape [${s}] but the config needs [${t.shape}]`);
  }
}

/**
 * A config whose SwiGLU hidden size is exactly `hidden`: formats store the size, ours derives it from multipleOf
 * (and ffnDimMultiplier). Prefers the plain llama rounding with a power-of-two multipleOf, as the presets use.
 */
export function configWithHidden(base: Partial<LlamaConfig>, hidden: number, what: string): LlamaConfig {
  if (!Number.isInteger(hidden) || hidden <= 0) throw new UserError(`${what}: feed-forward size ${hidden} is not a positive integer`);
  for (const m of [256, 128, 64, 32, 16, 8, 4, 2, 1]) {
    const c = makeConfig({ ...base, multipleOf: m, ffnDimMultiplier: null });
    if (ffnHiddenDim(c) === hidden) return c;
  }
  // hidden == multipleOf · 1 whenever the unrounded size fits in one multiple
  const c = makeConfig({ ...base, multipleOf: hidden, ffnDimMultiplier: null });
  if (ffnHiddenDim(c) === hidden) return c;
  const h0 = Math.floor((8 * (base.dim as number)) / 3);
  const mult = hidden / h0;
  const c2 = makeConfig({ ...base, multipleOf: hidden, ffnDimMultiplier: mult });
  if (ffnHiddenDim(c2) === hidden) return c2;
  throw new UserError(`${what}: cannot express feed-forward size ${hidden} for dim ${base.dim}`);
}

/** Meta name → name in GGUF (llama.cpp). */
export function ggufName(meta: string): string {
  if (meta === 'tok_embeddings.weight') return 'token_embd.weight';
  if (meta === 'norm.weight') return 'output_norm.weight';
  if (meta === 'output.weight') return 'output.weight';
  const m = /^layers\.(\d+)\.(.+)$/.exec(meta);
  if (!m) throw new Error(`no GGUF name for ${meta}`);
  const map: Record<string, string> = {
    'attention_norm.weight': 'attn_norm.weight', 'attention.wq.weight': 'attn_q.weight', 'attention.wk.weight': 'attn_k.weight',
    'attention.wv.weight': 'attn_v.weight', 'attention.wo.weight': 'attn_output.weight', 'ffn_norm.weight': 'ffn_norm.weight',
    'feed_forward.w1.weight': 'ffn_gate.weight', 'feed_forward.w2.weight': 'ffn_down.weight', 'feed_forward.w3.weight': 'ffn_up.weight',
  };
  return `blk.${m[1]}.${map[m[2]]}`;
}

/** Meta name → name in Hugging Face's LlamaForCausalLM. */
export function hfName(meta: string): string {
  if (meta === 'tok_embeddings.weight') return 'model.embed_tokens.weight';
  if (meta === 'norm.weight') return 'model.norm.weight';
  if (meta === 'output.weight') return 'lm_head.weight';
  const m = /^layers\.(\d+)\.(.+)$/.exec(meta);
  if (!m) throw new Error(`no HF name for ${meta}`);
  const map: Record<string, string> = {
    'attention_norm.weight': 'input_layernorm.weight', 'attention.wq.weight': 'self_attn.q_proj.weight', 'attention.wk.weight': 'self_attn.k_proj.weight',
    'attention.wv.weight': 'self_attn.v_proj.weight', 'attention.wo.weight': 'self_attn.o_proj.weight', 'ffn_norm.weight': 'post_attention_layernorm.weight',
    'feed_forward.w1.weight': 'mlp.gate_proj.weight', 'feed_forward.w2.weight': 'mlp.down_proj.weight', 'feed_forward.w3.weight': 'mlp.up_proj.weight',
  };
  return `model.layers.${m[1]}.${map[m[2]]}`;
}

/**
 * Meta's RoPE rotates adjacent pairs (x[2i], x[2i+1]); Hugging Face's rotate_half pairs x[i] with x[i + hd/2].
 * The HF conversion permutes the rows of wq/wk within each head so that both compute the same function:
 * HF row j·(hd/2) + i = Meta row 2i + j. `toHf` applies that permutation, `fromHf` its inverse.
 */
export function permuteRowsForHf(w: Float32Array, nHeads: number, rowsPerHead: number, cols: number, toHf: boolean): Float32Array {
  const out = new Float32Array(w.length);
  const half = rowsPerHead / 2;
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const meta = (h * rowsPerHead + 2 * i + j) * cols;
        const hf = (h * rowsPerHead + j * half + i) * cols;
        if (toHf) out.set(w.subarray(meta, meta + cols), hf);
        else out.set(w.subarray(hf, hf + cols), meta);
      }
    }
  }
  return out;
}

export function f32view(a: Float32Array | Float64Array): Float32Array {
  return a instanceof Float32Array ? a : Float32Array.from(a);
}
