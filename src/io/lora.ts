/**
 * LoRA adapters on disk, in Hugging Face PEFT's layout, so that an adapter trained here loads in PEFT
 * (`PeftModel.from_pretrained(base, dir)`) and one trained with PEFT loads here:
 *
 *   adapter_config.json          {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"], …}
 *   adapter_model.safetensors    base_model.model.model.layers.{l}.self_attn.q_proj.lora_A.weight [r, in]
 *                                base_model.model.model.layers.{l}.self_attn.q_proj.lora_B.weight [out, r]
 *
 * Hugging Face's q_proj/k_proj rows are Meta's permuted within each head (model-common.ts permuteRowsForHf), and so
 * are the rows of ΔW = s·B·A: lora_B of q and k is stored with that permutation of its rows; lora_A is unchanged.
 * A LoRA run's checkpoints (`checkpoints/step-N/`) hold these two files beside optimizer.safetensors and state.json
 * (with `lora` set): every checkpoint is itself a PEFT adapter directory.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Backend } from '../kernels/backend.js';
import { headDim, type LlamaConfig } from '../model/config.js';
import { LoraAdapter, HF_PROJECTION, checkLoraConfig, parseLoraTargets, type LoraConfig } from '../model/lora.js';
import { PROJECTIONS, type Projection } from '../model/llama.js';
import { readSafetensorsHeader, writeSafetensors } from './safetensors.js';
import { permuteRowsForHf, f32view } from './model-common.js';
import { writeDirAtomic, writeFileAtomic } from '../util/fsutil.js';
import { UserError } from '../util/errors.js';
import { resolveCheckpointDir, readCheckpointState } from './checkpoint.js';
import type { FlatTensors, TensorLayout } from '../model/params.js';

export const PEFT_WEIGHTS = 'adapter_model.safetensors';
export const PEFT_CONFIG = 'adapter_config.json';

const PREFIX = 'base_model.model.model.layers.';

/** The PEFT tensor name of one adapter matrix. */
export function peftName(layer: number, target: Projection, which: 'A' | 'B'): string {
  return `${PREFIX}${layer}.${HF_PROJECTION[target]}.lora_${which}.weight`;
}

/** Rows of B of q/k in Hugging Face's order (toHf) or back in Meta's; other projections as they are. */
function permuteB(c: LlamaConfig, target: Projection, b: Float32Array, rank: number, toHf: boolean): Float32Array {
  if (target === 'wq') return permuteRowsForHf(b, c.nHeads, headDim(c), rank, toHf);
  if (target === 'wk') return permuteRowsForHf(b, c.nKvHeads, headDim(c), rank, toHf);
  return b;
}

/** adapter_config.json as PEFT writes it for a LoRA of this rank, alpha and targets. */
export function peftConfigJson(lora: LoraConfig, baseModel: string | null): Record<string, unknown> {
  return {
    peft_type: 'LORA', task_type: 'CAUSAL_LM', base_model_name_or_path: baseModel, revision: null,
    r: lora.rank, lora_alpha: lora.alpha, lora_dropout: 0.0, target_modules: lora.targets.map((t) => HF_PROJECTION[t].split('.')[1]),
    bias: 'none', fan_in_fan_out: false, inference_mode: true, init_lora_weights: true, modules_to_save: null,
    layers_to_transform: null, layers_pattern: null, rank_pattern: {}, alpha_pattern: {}, use_rslora: false, use_dora: false,
  };
}

/** Writes the two PEFT files of `adapter` into `dir` (each file atomically). */
export function writePeftAdapter(dir: string, adapter: LoraAdapter, baseModel: string | null): void {
  const { config: c, lora } = adapter;
  const tensors = [];
  for (const [l, m] of adapter.layout.pairs.entries()) {
    for (const p of m.values()) {
      tensors.push({ name: peftName(l, p.target, 'A'), shape: p.a.shape, data: f32view(adapter.params.view(p.a)) });
      tensors.push({ name: peftName(l, p.target, 'B'), shape: p.b.shape, data: permuteB(c, p.target, f32view(adapter.params.view(p.b)), lora.rank, true) });
    }
  }
  writeSafetensors(join(dir, PEFT_WEIGHTS), tensors, { format: 'pt' });
  writeFileAtomic(join(dir, PEFT_CONFIG), [JSON.stringify(peftConfigJson(lora, baseModel), null, 2) + '\n']);
}

/**
 * The adapter directory a path names: a PEFT directory (adapter_config.json), or a LoRA run or checkpoint
 * directory (its latest checkpoint).
 */
export function resolveAdapterDir(path: string): string {
  if (!existsSync(path)) throw new UserError(`LoRA adapter '${path}' does not exist`);
  if (!statSync(path).isDirectory()) throw new UserError(`LoRA adapter '${path}' is not a directory (expected ${PEFT_CONFIG} + ${PEFT_WEIGHTS}, or a LoRA run directory)`);
  if (existsSync(join(path, PEFT_CONFIG))) return path;
  const dir = resolveCheckpointDir(path);
  if (!existsSync(join(dir, PEFT_CONFIG))) throw new UserError(`'${dir}' holds no LoRA adapter (no ${PEFT_CONFIG}): was the run trained with --lora?`);
  return dir;
}

/** The LoRA settings in an adapter_config.json; one line naming the file for anything llama-ts cannot apply. */
export function readPeftConfig(dir: string): { lora: LoraConfig; baseModel: string | null } {
  const file = join(dir, PEFT_CONFIG);
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new UserError(`${file}: not readable JSON (${(e as Error).message})`);
  }
  if (typeof j !== 'object' || j === null) throw new UserError(`${file}: not a JSON object`);
  if (j.peft_type !== 'LORA') throw new UserError(`${file}: peft_type is ${JSON.stringify(j.peft_type)}, only LORA adapters are supported`);
  if (j.use_rslora === true || j.use_dora === true) throw new UserError(`${file}: rsLoRA and DoRA adapters are not supported`);
  if (j.fan_in_fan_out === true) throw new UserError(`${file}: fan_in_fan_out adapters (GPT-2 Conv1D) do not apply to LLaMA`);
  if (j.bias !== undefined && j.bias !== 'none') throw new UserError(`${file}: bias ${JSON.stringify(j.bias)} is not supported (only "none")`);
  for (const k of ['rank_pattern', 'alpha_pattern']) {
    if (j[k] && typeof j[k] === 'object' && Object.keys(j[k] as object).length) throw new UserError(`${file}: ${k} (per-module ranks) is not supported`);
  }
  if (j.layers_to_transform !== undefined && j.layers_to_transform !== null) throw new UserError(`${file}: layers_to_transform is not supported`);
  const tm = j.target_modules;
  if (!Array.isArray(tm) || !tm.every((t) => typeof t === 'string')) throw new UserError(`${file}: target_modules must be a list of module names`);
  const targets = parseLoraTargets((tm as string[]).map((t) => t.split('.').pop()).join(','), `${file}: target_modules`);
  const lora: LoraConfig = { rank: Number(j.r), alpha: Number(j.lora_alpha ?? 8), targets };
  checkLoraConfig(lora, file);
  return { lora, baseModel: typeof j.base_model_name_or_path === 'string' ? j.base_model_name_or_path : null };
}

/** Loads a PEFT adapter directory (or a LoRA run's latest checkpoint) for a model of `config`. */
export function readPeftAdapter(path: string, config: LlamaConfig, backend: Backend): { adapter: LoraAdapter; dir: string; baseModel: string | null } {
  const dir = resolveAdapterDir(path);
  const { lora, baseModel } = readPeftConfig(dir);
  const file = join(dir, PEFT_WEIGHTS);
  if (!existsSync(file)) throw new UserError(`LoRA adapter '${dir}' has no ${PEFT_WEIGHTS}`);
  const st = readSafetensorsHeader(file);
  const adapter = new LoraAdapter(config, lora, backend);
  const used = new Set<string>();
  const find = (l: number, t: Projection, which: 'A' | 'B') => {
    const plain = peftName(l, t, which);
    const name = [plain, plain.replace(/\.weight$/, '.default.weight')].find((n) => st.tensors.has(n));
    if (!name) throw new UserError(`${file}: missing tensor '${plain}' (the adapter does not fit this model: ${config.nLayers} layers, targets ${lora.targets.join(',')})`);
    used.add(name);
    return name;
  };
  for (const [l, m] of adapter.layout.pairs.entries()) {
    for (const p of m.values()) {
      for (const [which, spec] of [['A', p.a], ['B', p.b]] as const) {
        const name = find(l, p.target, which);
        const shape = st.tensors.get(name)!.shape;
        if (shape.join('x') !== spec.shape.join('x')) throw new UserError(`${file}: tensor '${name}' has shape [${shape}] but this model needs [${spec.shape}] (rank ${lora.rank})`);
        const data = st.readF32(name);
        adapter.params.view(spec).set(which === 'B' ? permuteB(config, p.target, data, lora.rank, false) : data);
      }
    }
  }
  const extra = [...st.tensors.keys()].filter((n) => !used.has(n));
  if (extra.length) throw new UserError(`${file}: tensor '${extra[0]}' is not a LoRA matrix of a layer of this model (${config.nLayers} layers; targets ${lora.targets.join(',')}; known modules ${PROJECTIONS.map((p) => HF_PROJECTION[p]).join(', ')})`);
  return { adapter, dir, baseModel };
}

/** Fills AdamW moments in the adapter's flat layout from a LoRA checkpoint's optimizer.safetensors. */
export function readLoraMoments(dir: string, m: FlatTensors<TensorLayout>, v: FlatTensors<TensorLayout>): void {
  const file = join(dir, 'optimizer.safetensors');
  if (!existsSync(file)) throw new UserError(`checkpoint '${dir}' has no optimizer.safetensors: cannot resume training from it`);
  const st = readSafetensorsHeader(file);
  for (const [key, buf] of [['adamw.m', m], ['adamw.v', v]] as const) {
    const info = st.tensors.get(key);
    if (!info || info.shape[0] !== buf.data.length) throw new UserError(`checkpoint '${dir}': optimizer state '${key}' is missing or has the wrong size for this adapter (${buf.data.length})`);
    buf.data.set(st.readF32(key));
  }
}

/**
 * Writes a LoRA run's adapter (its latest checkpoint, or a given checkpoint) as a clean PEFT directory: only
 * adapter_model.safetensors and adapter_config.json, without the optimizer state. Returns the checkpoint read.
 */
export function exportPeft(from: string, to: string): string {
  const { dir, state } = readCheckpointState(from);
  if (!state.lora) throw new UserError(`checkpoint '${dir}' is not a LoRA run (train with --lora R to get an adapter)`);
  const { adapter, baseModel } = readPeftAdapter(dir, state.config, { alloc: (n: number) => new Float32Array(n) } as unknown as Backend);
  writeDirAtomic(to, (d) => writePeftAdapter(d, adapter, baseModel), [PEFT_CONFIG]);
  return dir;
}

/** The base model an adapter records (adapter_config.json base_model_name_or_path) when it is a path that exists here. */
export function adapterBasePath(adapterPath: string): string | null {
  const base = readPeftConfig(resolveAdapterDir(adapterPath)).baseModel;
  return base !== null && existsSync(base) ? base : null;
}
