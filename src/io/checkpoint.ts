/**
 * Checkpoints: a directory per save, `<run>/checkpoints/step-00000100/` holding
 *   model.safetensors      weights under Meta's names (float32)
 *   optimizer.safetensors  AdamW moments as two flat tensors in the parameter layout
 *   state.json             step, config, hyper-parameters, data position (RNG state), tokenizer
 *   tokenizer.model        (when a SentencePiece tokenizer was used)
 * A save is written into a temporary directory, fsynced, renamed into place, and only then does
 * `<run>/checkpoints/latest` (itself replaced atomically) point at it: a crash at any moment leaves the last
 * good checkpoint intact and pointed to.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeSafetensors, readSafetensorsHeader, type SafeTensorsFile } from './safetensors.js';
import { fsyncDir, writeFileAtomic } from '../util/fsutil.js';
import { UserError, quoted } from '../util/errors.js';
import { checkConfigFits } from './model-common.js';
import { configFromJson, type LlamaConfig } from '../model/config.js';
import type { FlatTensors, ParamLayout, TensorLayout, TensorSpec } from '../model/params.js';
import { paramLayout, shardOf } from '../model/params.js';
import { decodeSafetensors, openBundle } from './bundle.js';

export { CHECKPOINT_FORMAT } from './bundle.js';
import { CHECKPOINT_FORMAT } from './bundle.js';

/** 'vocab': a TokenizerVocab JSON file (pieces/scores/types/specials) written when a model is converted from another format. */
import type { TokenizerRef } from '../tokenizer/ref.js';
export type { TokenizerRef };

export interface CheckpointState {
  format: typeof CHECKPOINT_FORMAT;
  version: 1;
  step: number;
  config: LlamaConfig;
  hyper: Record<string, unknown>;
  data: unknown;
  tokenizer: TokenizerRef;
  /** Loss of every step so far is in the run's JSONL log; the last one is kept here for quick inspection. */
  lastLoss: number | null;
  savedAt: string;
  /**
   * The ranks the run was saved from (absent: one process). The tensors are whole whatever the layout; `hyper.accum`
   * is per data-parallel rank, so a resume with another data-parallel width keeps the global batch by rescaling it.
   */
  layout?: { tp: number; dp: number };
  /**
   * A LoRA run (io/lora.ts): the directory holds the adapter (adapter_model.safetensors + adapter_config.json, PEFT's
   * layout) instead of model.safetensors, the moments are the adapter's, and the frozen base is `finetune.initFrom`.
   */
  lora?: { rank: number; alpha: number; targets: string[] };
  /** A fine-tuning run: the model it started from and the SFT data (resume reopens them). */
  finetune?: FinetuneRecord;
}

export interface FinetuneRecord {
  /** The model path given to --init-from, absolute. */
  initFrom?: string;
  /** sha256 of the base weights (float32) a LoRA run trained over; a resume checks the base is still the same. */
  baseSha256?: string;
  sft?: { file: string; template: string };
}

function f32(a: Float32Array | Float64Array): Float32Array {
  return a instanceof Float32Array ? a : Float32Array.from(a);
}

export function saveModelSafetensors(path: string, params: FlatTensors, metadata: Record<string, string> = {}): void {
  writeSafetensors(
    path,
    params.layout.tensors.map((t) => ({ name: t.name, shape: t.shape, data: f32(params.view(t)) })),
    { format: 'pt', ...metadata },
  );
}

export interface SaveArgs {
  runDir: string;
  state: CheckpointState;
  /** The model's weights (model.safetensors); absent for a LoRA run, whose `writeWeights` writes the adapter. */
  params?: FlatTensors;
  writeWeights?: (dir: string) => void;
  /** AdamW moments in the trained tensors' flat layout (the model's, or the adapter's). */
  moments?: { m: FlatTensors<TensorLayout>; v: FlatTensors<TensorLayout> };
  tokenizerFile?: string;
  keep?: number;
}

export function saveCheckpoint(a: SaveArgs): string {
  const root = join(a.runDir, 'checkpoints');
  mkdirSync(root, { recursive: true });
  const name = `step-${String(a.state.step).padStart(8, '0')}`;
  const tmp = join(root, `${name}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  if (a.params) saveModelSafetensors(join(tmp, 'model.safetensors'), a.params, { step: String(a.state.step) });
  a.writeWeights?.(tmp);
  if (a.moments) {
    writeSafetensors(join(tmp, 'optimizer.safetensors'), [
      { name: 'adamw.m', shape: [a.moments.m.data.length], data: f32(a.moments.m.data) },
      { name: 'adamw.v', shape: [a.moments.v.data.length], data: f32(a.moments.v.data) },
    ]);
  }
  if (a.tokenizerFile && a.state.tokenizer.kind !== 'bytes') copyFileSync(a.tokenizerFile, join(tmp, a.state.tokenizer.file));
  writeFileAtomic(join(tmp, 'state.json'), [JSON.stringify(a.state, null, 1)]);
  fsyncDir(tmp);
  const final = join(root, name);
  if (existsSync(final)) {
    const old = `${final}.old-${process.pid}`;
    renameSync(final, old);
    renameSync(tmp, final);
    rmSync(old, { recursive: true, force: true });
  } else {
    renameSync(tmp, final);
  }
  fsyncDir(root);
  writeFileAtomic(join(root, 'latest'), [name + '\n']);
  prune(root, name, a.keep ?? 2);
  return final;
}

function prune(root: string, current: string, keep: number): void {
  const dirs = readdirSync(root).filter((d) => /^step-\d{8}$/.test(d)).sort();
  const idx = dirs.indexOf(current);
  const older = dirs.slice(0, idx + 1);
  for (const d of older.slice(0, Math.max(0, older.length - keep))) rmSync(join(root, d), { recursive: true, force: true });
  // leftovers of interrupted saves
  for (const d of readdirSync(root)) if (/\.(tmp|old)-\d+$/.test(d)) rmSync(join(root, d), { recursive: true, force: true });
}

/** Accepts a checkpoint directory, a run directory, or a run's checkpoints/ directory. */
export function resolveCheckpointDir(path: string): string {
  if (!existsSync(path)) throw new UserError(`checkpoint '${path}' does not exist`);
  if (!statSync(path).isDirectory()) throw new UserError(`checkpoint '${path}' is not a directory`);
  if (existsSync(join(path, 'state.json'))) return path;
  for (const root of [join(path, 'checkpoints'), path]) {
    const latest = join(root, 'latest');
    if (existsSync(latest)) {
      const name = readFileSync(latest, 'utf8').trim();
      if (!/^step-\d{8,}$/.test(name)) throw new UserError(`checkpoint pointer '${latest}' is corrupt: it holds ${quoted(name)}, not a checkpoint name like step-00000100`);
      const dir = join(root, name);
      if (!existsSync(join(dir, 'state.json'))) {
        if (existsSync(`${dir}.safetensors`)) return `${dir}.safetensors`; // a single-file checkpoint (io/bundle.ts) placed in the run
        throw new UserError(`checkpoint pointer '${latest}' names '${name}', which is missing`);
      }
      return dir;
    }
  }
  throw new UserError(`no checkpoint in '${path}' (expected state.json or checkpoints/latest)`);
}

export interface LoadedCheckpoint {
  dir: string;
  state: CheckpointState;
  layout: ParamLayout;
  /**
   * model.safetensors, its names and shapes checked against the config (mapped when opened with `map`); absent for a
   * single-file checkpoint (io/bundle.ts), which loadInto reads.
   */
  model?: SafeTensorsFile;
  /** Fills params (and moments when given) from the files, validating names and shapes. */
  loadInto(params: FlatTensors, moments?: { m: FlatTensors; v: FlatTensors }): void;
}

/** A checkpoint's directory and state.json (config checked), whatever it holds: a model or a LoRA adapter. */
export function readCheckpointState(path: string): { dir: string; state: CheckpointState } {
  const dir = resolveCheckpointDir(path);
  if (statSync(dir).isFile()) {
    const b = openBundleFile(dir);
    return { dir: b.dir, state: b.state };
  }
  let state: CheckpointState;
  try {
    state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as CheckpointState;
  } catch (e) {
    throw new UserError(`checkpoint '${dir}': state.json is unreadable (${(e as Error).message})`);
  }
  if (state?.format !== CHECKPOINT_FORMAT || state.version !== 1) throw new UserError(`checkpoint '${dir}': not a llama-ts checkpoint (format/version)`);
  state.config = configFromJson(state.config, `checkpoint '${dir}' config`);
  return { dir, state };
}

/**
 * A checkpoint directory, a run directory (its latest checkpoint), or a single-file checkpoint (io/bundle.ts: the
 * browser page's download; byte tokenizer only). `map`: model.safetensors is mapped (views for inference,
 * util/mmap.ts); training opens it without.
 */
export function openCheckpoint(path: string, o: { map?: boolean } = {}): LoadedCheckpoint {
  if (existsSync(path) && statSync(path).isFile()) return openBundleFile(path);
  const resolved = resolveCheckpointDir(path);
  if (statSync(resolved).isFile()) return openBundleFile(resolved);
  const { dir, state } = readCheckpointState(path);
  const config = state.config;
  if (state.lora) throw new UserError(`checkpoint '${dir}' is a LoRA adapter (rank ${state.lora.rank}) over '${state.finetune?.initFrom ?? '?'}': load the base with --model and the adapter with --lora ${dir}, or merge them with 'llama-ts convert --merge-lora'`);
  const modelPath = join(dir, 'model.safetensors');
  if (!existsSync(modelPath)) throw new UserError(`checkpoint '${dir}' has no model.safetensors`);
  const st = readSafetensorsHeader(modelPath, { map: o.map });
  checkConfigFits(`checkpoint '${dir}'`, config, st.tensors.size);
  const layout = paramLayout(config);
  for (const t of layout.tensors) {
    const info = st.tensors.get(t.name);
    if (!info) throw new UserError(`checkpoint '${dir}': model.safetensors lacks tensor '${t.name}' required by its config`);
    if (info.shape.join('x') !== t.shape.join('x')) {
      throw new UserError(`checkpoint '${dir}': tensor '${t.name}' has shape [${info.shape}] but the config needs [${t.shape}]`);
    }
  }
  return {
    dir,
    state,
    layout,
    model: st,
    loadInto(params, moments) {
      // the checkpoint holds whole tensors; a tensor-parallel rank takes its shard of each (params.ts)
      const tp = params.layout.tp;
      if (params.layout.tensors.length !== layout.tensors.length || params.layout.tensors.some((t) => layout.byName.get(t.name)?.size !== t.size * (t.split === 'replicated' ? 1 : tp.size))) {
        throw new UserError(`checkpoint '${dir}' does not match the model (${layout.total} parameters)`);
      }
      const place = (t: TensorSpec, full: Float32Array, out: FlatTensors) => (tp.size === 1 ? out.view(t).set(full) : shardOf(t, full, out.view(t), tp));
      // one process, float32: each tensor is read from the file straight into its view of the flat buffer
      const direct = (out: FlatTensors) => tp.size === 1 && out.data instanceof Float32Array;
      for (const t of params.layout.tensors) {
        if (direct(params)) st.readF32Into(t.name, params.view(t) as Float32Array);
        else place(t, st.readF32(t.name), params);
      }
      if (moments) {
        const optPath = join(dir, 'optimizer.safetensors');
        if (!existsSync(optPath)) throw new UserError(`checkpoint '${dir}' has no optimizer.safetensors: cannot resume training from it`);
        const ot = readSafetensorsHeader(optPath);
        for (const [key, buf] of [['adamw.m', moments.m], ['adamw.v', moments.v]] as const) {
          const info = ot.tensors.get(key);
          if (!info || info.shape[0] !== layout.total) throw new UserError(`checkpoint '${dir}': optimizer state '${key}' is missing or has the wrong size`);
          if (direct(buf)) {
            ot.readF32Into(key, buf.data as Float32Array);
            continue;
          }
          const flat = ot.readF32(key);
          if (tp.size === 1) buf.data.set(flat);
          else for (const t of buf.layout.tensors) {
            const whole = layout.byName.get(t.name) as TensorSpec;
            place(t, flat.subarray(whole.offset, whole.offset + whole.size), buf);
          }
        }
      }
    },
  };
}

function openBundleFile(path: string): LoadedCheckpoint {
  const what = `checkpoint '${path}'`;
  const b = openBundle(decodeSafetensors(new Uint8Array(readFileSync(path)), what), what);
  if (b.state.tokenizer?.kind !== 'bytes') throw new UserError(`${what}: a single-file checkpoint carries the byte tokenizer only, not '${b.state.tokenizer?.kind}'`);
  checkConfigFits(what, b.state.config, b.layout.tensors.length);
  return {
    dir: path, state: b.state, layout: b.layout,
    loadInto(params, moments) {
      if (params.layout.tp.size !== 1) throw new UserError(`${what}: a single-file checkpoint loads into one process (no tensor parallelism)`);
      b.loadInto(params, moments);
    },
  };
}
