/**
 * A checkpoint in one file, without the file system (the browser page saves and opens these; `io/checkpoint.ts`
 * opens them from a path): a safetensors file holding the model's tensors under Meta's names (float32), the AdamW
 * moments as `adamw.m` and `adamw.v` (flat, in the parameter layout, as optimizer.safetensors), and the checkpoint's
 * state.json as the header metadata key `llama-ts`. Any safetensors reader sees the weights; `llama-ts generate
 * --model file.safetensors` and `train --resume` read it as the checkpoint directory it stands for.
 * Also here: safetensors from bytes (the page reads a checkpoint directory's model.safetensors this way).
 */
import { UserError } from '../util/errors.js';
import { configFromJson } from '../model/config.js';
import { paramLayout, type FlatTensors, type ParamLayout } from '../model/params.js';
import type { CheckpointState } from './checkpoint.js';

/** state.json's `format`. */
export const CHECKPOINT_FORMAT = 'llama-ts-checkpoint';

/** The metadata key holding the state. */
export const BUNDLE_KEY = 'llama-ts';

export interface SafetensorsBytes {
  metadata: Record<string, string>;
  /** Shape and float32 values of each F32 tensor (other dtypes are listed with `data` null). */
  tensors: Map<string, { shape: number[]; dtype: string; data: Float32Array | null }>;
}

/** safetensors bytes: u64 header length, JSON header, data. F32 tensors only are decoded. */
export function decodeSafetensors(bytes: Uint8Array, what: string): SafetensorsBytes {
  const bad = (why: string): never => {
    throw new UserError(`${what} is not a safetensors file (${why})`);
  };
  if (bytes.length < 8) bad('shorter than its header length');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = dv.getUint32(0, true) + dv.getUint32(4, true) * 2 ** 32;
  if (n < 2 || 8 + n > bytes.length) bad(`header length ${n} does not fit the ${bytes.length} bytes`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n))) as Record<string, unknown>;
  } catch {
    return bad('its header is not JSON');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) bad('its header is not a JSON object');
  const base = 8 + n;
  const metadata: Record<string, string> = {};
  const tensors: SafetensorsBytes['tensors'] = new Map();
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') {
      for (const [k, v] of Object.entries((info ?? {}) as Record<string, unknown>)) if (typeof v === 'string') metadata[k] = v;
      continue;
    }
    const t = info as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const shape = t?.shape, off = t?.data_offsets;
    if (typeof t?.dtype !== 'string' || !Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0) || !Array.isArray(off) || off.length !== 2) {
      bad(`tensor '${name}' has a malformed entry`);
    }
    const [a, b] = off as number[];
    if (!(Number.isSafeInteger(a) && Number.isSafeInteger(b) && a >= 0 && b >= a && base + b <= bytes.length)) bad(`tensor '${name}' lies outside the file`);
    const count = (shape as number[]).reduce((x, y) => x * y, 1);
    let data: Float32Array | null = null;
    if (t.dtype === 'F32') {
      if (b - a !== count * 4) bad(`tensor '${name}' has ${b - a} bytes for ${count} float32 values`);
      const start = bytes.byteOffset + base + a;
      data = start % 4 === 0 ? new Float32Array(bytes.buffer, start, count) : new Float32Array(bytes.slice(base + a, base + b).buffer);
    }
    tensors.set(name, { shape: shape as number[], dtype: t.dtype as string, data });
  }
  return { metadata, tensors };
}

/** safetensors bytes of float32 tensors (in the given order) with string metadata. */
export function encodeSafetensors(tensors: { name: string; shape: number[]; data: ArrayLike<number> }[], metadata: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let off = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: 'F32', shape: t.shape, data_offsets: [off, off + t.data.length * 4] };
    off += t.data.length * 4;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) json = new TextEncoder().encode(JSON.stringify(header) + ' '.repeat(pad));
  const out = new Uint8Array(8 + json.length + off);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, json.length, true);
  out.set(json, 8);
  let o = 8 + json.length;
  for (const t of tensors) {
    new Float32Array(out.buffer, o, t.data.length).set(t.data);
    o += t.data.length * 4;
  }
  return out;
}

/** The bundle of a checkpoint: its state, the weights and (for resuming) the AdamW moments. */
export function encodeCheckpointBundle(state: CheckpointState, params: FlatTensors, moments?: { m: FlatTensors; v: FlatTensors }): Uint8Array {
  const tensors = params.layout.tensors.map((t) => ({ name: t.name, shape: t.shape, data: params.view(t) }));
  if (moments) tensors.push({ name: 'adamw.m', shape: [moments.m.data.length], data: moments.m.data }, { name: 'adamw.v', shape: [moments.v.data.length], data: moments.v.data });
  return encodeSafetensors(tensors, { format: 'pt', step: String(state.step), [BUNDLE_KEY]: JSON.stringify(state) });
}

export interface OpenedBundle {
  state: CheckpointState;
  layout: ParamLayout;
  /** Copies the weights (and the moments when given; a UserError when the bundle has none) into the model's buffers. */
  loadInto(params: FlatTensors, moments?: { m: FlatTensors; v: FlatTensors }): void;
  hasMoments: boolean;
}

/** Whether safetensors metadata marks a llama-ts checkpoint bundle. */
export function isBundle(st: SafetensorsBytes): boolean {
  return typeof st.metadata[BUNDLE_KEY] === 'string';
}

/**
 * Opens a bundle (or a checkpoint directory's parts: its state.json given separately, its model.safetensors and
 * optimizer.safetensors as `st` and `opt`), checking the state and every tensor's shape against the config.
 */
export function openBundle(st: SafetensorsBytes, what: string, stateJson?: unknown, opt?: SafetensorsBytes): OpenedBundle {
  let state: CheckpointState;
  if (stateJson !== undefined) state = stateJson as CheckpointState;
  else {
    if (!isBundle(st)) throw new UserError(`${what} is a safetensors file but not a llama-ts checkpoint (no '${BUNDLE_KEY}' state in its metadata)`);
    try {
      state = JSON.parse(st.metadata[BUNDLE_KEY]) as CheckpointState;
    } catch {
      throw new UserError(`${what}: its checkpoint state is not JSON`);
    }
  }
  if (state?.format !== CHECKPOINT_FORMAT || state.version !== 1) throw new UserError(`${what}: not a llama-ts checkpoint (format/version)`);
  state.config = configFromJson(state.config, `${what} config`);
  const layout = paramLayout(state.config);
  for (const t of layout.tensors) {
    const info = st.tensors.get(t.name);
    if (!info) throw new UserError(`${what} lacks tensor '${t.name}' required by its config`);
    if (info.shape.join('x') !== t.shape.join('x')) throw new UserError(`${what}: tensor '${t.name}' has shape [${info.shape}] but the config needs [${t.shape}]`);
    if (!info.data) throw new UserError(`${what}: tensor '${t.name}' is ${info.dtype}, expected F32`);
  }
  const momentsOf = opt ?? st;
  const hasMoments = ['adamw.m', 'adamw.v'].every((k) => momentsOf.tensors.get(k)?.data?.length === layout.total);
  return {
    state, layout, hasMoments,
    loadInto(params, moments) {
      if (params.layout.total !== layout.total || params.layout.tensors.length !== layout.tensors.length) {
        throw new UserError(`${what} does not match the model (${layout.total} parameters)`);
      }
      for (const t of params.layout.tensors) params.view(t).set(st.tensors.get(t.name)!.data!);
      if (moments) {
        if (!hasMoments) throw new UserError(`${what} has no optimizer state: cannot resume training from it`);
        moments.m.data.set(momentsOf.tensors.get('adamw.m')!.data!);
        moments.v.data.set(momentsOf.tensors.get('adamw.v')!.data!);
      }
    },
  };
}
