/**
 * Hugging Face `LlamaForCausalLM` directories: config.json + model.safetensors, or shards
 * model-0000i-of-0000n.safetensors with model.safetensors.index.json ({metadata: {total_size}, weight_map}).
 *
 * HF's q_proj/k_proj rows are permuted within each head relative to Meta's (rotate_half RoPE instead of adjacent
 * pairs): see permuteRowsForHf. Import accepts F32, F16 and BF16 tensors; export writes F32 (or F16/BF16).
 * Our tokenizer vocabulary travels in `llama-ts-vocab.json` beside the weights (HF's tokenizer files are not read).
 */
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ffnHiddenDim, headDim, type LlamaConfig } from '../model/config.js';
import type { Llama } from '../model/llama.js';
import { paramLayout } from '../model/params.js';
import { validateVocab, type TokenizerVocab } from '../tokenizer/vocab.js';
import { UserError } from '../util/errors.js';
import { writeFileAtomic } from '../util/fsutil.js';
import { readSafetensorsHeader, writeSafetensors, type SafeTensorsFile, type TensorToWrite } from './safetensors.js';
import { checkConfigFits, checkShapes, configWithHidden, f32view, hfName, permuteRowsForHf, type ModelSource, type ReadOptions } from './model-common.js';

export const HF_VOCAB_FILE = 'llama-ts-vocab.json';

function readJson(path: string, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UserError(`${what} '${path}' is unreadable or not JSON (${(e as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new UserError(`${what} '${path}' is not a JSON object`);
  return v as Record<string, unknown>;
}

export function isHfDir(path: string): boolean {
  return existsSync(path) && statSync(path).isDirectory() && existsSync(join(path, 'config.json'));
}

export function hfConfig(cfg: Record<string, unknown>, what: string): LlamaConfig {
  const arch = cfg.architectures;
  const archs = Array.isArray(arch) ? arch.map(String) : [];
  if (!(archs.includes('LlamaForCausalLM') || (archs.length === 0 && cfg.model_type === 'llama'))) {
    throw new UserError(`${what}: architecture ${archs.length ? archs.join(', ') : String(cfg.model_type)} is not supported (only LlamaForCausalLM)`);
  }
  const n = (k: string, dflt?: number): number => {
    const v = cfg[k];
    if (v === undefined || v === null) {
      if (dflt !== undefined) return dflt;
      throw new UserError(`${what}: config.json lacks '${k}'`);
    }
    if (typeof v !== 'number') throw new UserError(`${what}: config.json '${k}' is not a number`);
    return v;
  };
  if (cfg.rope_scaling !== undefined && cfg.rope_scaling !== null) throw new UserError(`${what}: rope_scaling is not supported`);
  if (cfg.attention_bias === true || cfg.mlp_bias === true) throw new UserError(`${what}: attention/MLP biases are not supported`);
  if (cfg.hidden_act !== undefined && cfg.hidden_act !== 'silu') throw new UserError(`${what}: hidden_act '${String(cfg.hidden_act)}' is not supported (only silu)`);
  const dim = n('hidden_size');
  const nHeads = n('num_attention_heads');
  if (cfg.head_dim !== undefined && cfg.head_dim !== null && cfg.head_dim !== dim / nHeads) throw new UserError(`${what}: head_dim ${String(cfg.head_dim)} ≠ hidden_size / heads is not supported`);
  const base: Partial<LlamaConfig> = {
    dim, nLayers: n('num_hidden_layers'), nHeads, nKvHeads: n('num_key_value_heads', nHeads), vocabSize: n('vocab_size'),
    normEps: n('rms_norm_eps', 1e-6), ropeTheta: n('rope_theta', 10000), maxSeqLen: n('max_position_embeddings', 2048),
  };
  let config = configWithHidden(base, n('intermediate_size'), what);
  const ours = cfg.llama_ts_config as Partial<LlamaConfig> | undefined;
  if (ours && typeof ours === 'object' && typeof ours.multipleOf === 'number') {
    const cand = { ...config, multipleOf: ours.multipleOf, ffnDimMultiplier: ours.ffnDimMultiplier ?? null };
    if (ffnHiddenDim(cand) === ffnHiddenDim(config)) config = cand;
  }
  return config;
}

export function readHf(dir: string, o: ReadOptions = {}): ModelSource {
  const what = `Hugging Face model '${dir}'`;
  const cfg = readJson(join(dir, 'config.json'), 'config');
  const config = hfConfig(cfg, what);
  // which file holds which tensor
  const files = new Map<string, SafeTensorsFile>();
  const where = new Map<string, SafeTensorsFile>();
  const indexPath = join(dir, 'model.safetensors.index.json');
  if (existsSync(indexPath)) {
    const idx = readJson(indexPath, 'safetensors index');
    const wm = idx.weight_map as Record<string, unknown> | undefined;
    if (!wm || typeof wm !== 'object') throw new UserError(`${what}: index has no weight_map`);
    for (const [name, file] of Object.entries(wm)) {
      if (typeof file !== 'string' || file.includes('/') || file.includes('\\')) throw new UserError(`${what}: index maps '${name}' to a bad file name`);
      if (!files.has(file)) {
        const p = join(dir, file);
        if (!existsSync(p)) throw new UserError(`${what}: shard '${file}' named in the index is missing`);
        files.set(file, readSafetensorsHeader(p, { map: o.map }));
      }
      const f = files.get(file)!;
      if (!f.tensors.has(name)) throw new UserError(`${what}: index says '${name}' is in '${file}', but it is not`);
      where.set(name, f);
    }
  } else {
    const p = join(dir, 'model.safetensors');
    if (!existsSync(p)) throw new UserError(`${what}: no model.safetensors or model.safetensors.index.json`);
    const f = readSafetensorsHeader(p, { map: o.map });
    files.set('model.safetensors', f);
    for (const name of f.tensors.keys()) where.set(name, f);
  }
  const tied = !where.has('lm_head.weight') && (cfg.tie_word_embeddings === true || cfg.tie_word_embeddings === undefined);
  checkConfigFits(what, config, where.size);
  const fileName = (meta: string) => (tied && meta === 'output.weight' ? 'model.embed_tokens.weight' : hfName(meta));
  checkShapes(what, config, (meta) => where.get(fileName(meta))?.tensors.get(fileName(meta))?.shape ?? null, fileName);
  const hd = headDim(config);
  let vocab: TokenizerVocab | null = null;
  const vpath = join(dir, HF_VOCAB_FILE);
  if (existsSync(vpath)) {
    vocab = readJson(vpath, 'vocabulary') as unknown as TokenizerVocab;
    validateVocab(vocab, `vocabulary '${vpath}'`);
  }
  return {
    config,
    vocab,
    description: what,
    tensor(meta: string): Float32Array {
      const name = fileName(meta);
      const f = where.get(name);
      if (!f) throw new UserError(`${what}: missing tensor '${name}'`);
      const data = f.readF32(name);
      if (/attention\.wq\.weight$/.test(meta)) return permuteRowsForHf(data, config.nHeads, hd, config.dim, false);
      if (/attention\.wk\.weight$/.test(meta)) return permuteRowsForHf(data, config.nKvHeads, hd, config.dim, false);
      return data;
    },
    mapped: [...files.values()].some((f) => f.bytes.mapped),
    check: () => { for (const f of files.values()) f.bytes.check(); },
    converted(meta: string): string | null {
      const name = fileName(meta);
      const why = where.get(name)?.converted(name) ?? 'read';
      if (/attention\.w[qk]\.weight$/.test(meta)) return why === null || why === 'read' ? 'q/k rows permuted (Hugging Face → Meta order)' : `${why}, q/k rows permuted`;
      return why;
    },
  };
}

export interface HfWriteOptions {
  dtype?: 'F32' | 'F16' | 'BF16';
  /** Split into shards of at most this many bytes (with an index); default: one file. */
  maxShardBytes?: number;
}

export function hfConfigJson(c: LlamaConfig, vocab: TokenizerVocab | null, dtype: string): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_act: 'silu',
    hidden_size: c.dim, intermediate_size: ffnHiddenDim(c), num_hidden_layers: c.nLayers, num_attention_heads: c.nHeads,
    num_key_value_heads: c.nKvHeads, vocab_size: c.vocabSize, rms_norm_eps: c.normEps, rope_theta: c.ropeTheta,
    max_position_embeddings: c.maxSeqLen, tie_word_embeddings: false, attention_bias: false, mlp_bias: false, rope_scaling: null,
    bos_token_id: vocab?.bos ?? 1, eos_token_id: vocab?.eos ?? 2, torch_dtype: { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[dtype],
    llama_ts_config: c,
  };
}

export function writeHf(dir: string, model: Llama, vocab: TokenizerVocab | null, o: HfWriteOptions = {}): void {
  const c = model.config;
  const dtype = o.dtype ?? 'F32';
  mkdirSync(dir, { recursive: true });
  const hd = headDim(c);
  const tensors: TensorToWrite[] = paramLayout(c).tensors.map((t) => {
    let data = f32view(model.params.view(t));
    if (/attention\.wq\.weight$/.test(t.name)) data = permuteRowsForHf(data, c.nHeads, hd, c.dim, true);
    if (/attention\.wk\.weight$/.test(t.name)) data = permuteRowsForHf(data, c.nKvHeads, hd, c.dim, true);
    return { name: hfName(t.name), shape: t.shape, data, dtype };
  });
  const bytes = (t: TensorToWrite) => t.data.length * (dtype === 'F32' ? 4 : 2);
  const total = tensors.reduce((a, t) => a + bytes(t), 0);
  if (!o.maxShardBytes || total <= o.maxShardBytes) {
    writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  } else {
    const shards: TensorToWrite[][] = [[]];
    let size = 0;
    for (const t of tensors) {
      if (size > 0 && size + bytes(t) > o.maxShardBytes) {
        shards.push([]);
        size = 0;
      }
      shards[shards.length - 1].push(t);
      size += bytes(t);
    }
    const n = shards.length;
    const weightMap: Record<string, string> = {};
    shards.forEach((sh, i) => {
      const name = `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
      writeSafetensors(join(dir, name), sh, { format: 'pt' });
      for (const t of sh) weightMap[t.name] = name;
    });
    writeFileAtomic(join(dir, 'model.safetensors.index.json'), [JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2)]);
  }
  writeFileAtomic(join(dir, 'config.json'), [JSON.stringify(hfConfigJson(c, vocab, dtype), null, 2)]);
  if (vocab) writeFileAtomic(join(dir, HF_VOCAB_FILE), [JSON.stringify(vocab)]);
}
