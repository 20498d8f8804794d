/** Prefill and decode throughput of the KV-cache decoder (batch 1), shared by `bench generate` and bench/generate.ts. */
import { readFileSync } from 'node:fs';
import type { Llama } from '../model/llama.js';
import type { TensorSpec } from '../model/params.js';
import type { Backend, FloatArray } from '../kernels/backend.js';
import type { NativeBackend } from '../kernels/native.js';
import { Decoder, type KvCacheType } from './generate.js';
import { argmaxOn } from './sampler.js';
import { Rng } from '../util/rng.js';
import { UserError } from '../util/errors.js';

export interface GenerateSpeed {
  prefill_tokens: number;
  prefill_tokens_per_s: number;
  decode_tokens: number;
  decode_tokens_per_s: number;
}

/** Prefills `promptTokens` random tokens, then greedily decodes `decodeTokens` tokens, timing each phase. */
export function measureGenerate(model: Llama, promptTokens: number, decodeTokens: number, seed = 1, kvCache: KvCacheType = 'f32'): GenerateSpeed {
  const c = model.config;
  if (promptTokens < 1 || promptTokens + decodeTokens > c.maxSeqLen) {
    throw new UserError(`prompt ${promptTokens} + ${decodeTokens} decode tokens must fit the model's context of ${c.maxSeqLen}`);
  }
  const rng = new Rng(seed);
  const prompt = Array.from({ length: promptTokens }, () => rng.int(c.vocabSize));
  const dec = new Decoder(model, { kvCache });
  // warm-up as llama-bench's: the whole prompt and two decode steps on the cache the timed run then reuses, cleared
  // (llama-bench clears its context's cache between runs). The JIT, the decoder's and the kernels' buffers sized for
  // the prompt, and the first touch of the cache's pages (huge pages zeroed as the first rows land) are not the
  // product's time: single-shot mini-110m Q4_0 prefills on a loaded machine read 728-1415 tokens/s on a fresh cache,
  // 1504-2064 on the warmed one.
  const cache = dec.newCache();
  {
    let lg = dec.prefill(cache, prompt);
    for (let i = 0; i < Math.min(2, cache.maxSeq - promptTokens); i++) lg = dec.step([{ cache, tokens: [argmaxOn(model.backend, lg)] }], 'last', true)[0];
    cache.reset();
  }
  const t0 = performance.now();
  let logits = dec.prefill(cache, prompt);
  const t1 = performance.now();
  for (let i = 0; i < decodeTokens; i++) logits = dec.step([{ cache, tokens: [argmaxOn(model.backend, logits)] }], 'last', true)[0];
  const t2 = performance.now();
  return {
    prefill_tokens: promptTokens, prefill_tokens_per_s: promptTokens / ((t1 - t0) / 1000),
    decode_tokens: decodeTokens, decode_tokens_per_s: decodeTokens / Math.max((t2 - t1) / 1000, 1e-9),
  };
}

/**
 * Bytes of weights one decoded token reads (batch 1): every matrix of the blocks and the head — a quantized one as
 * stored (its blocks), a float one at the backend's element size — the norm gains, and one row of the embedding table.
 */
export function decodeWeightBytes(model: Llama): number {
  const el = model.backend.alloc(0).BYTES_PER_ELEMENT;
  let n = 0;
  for (const t of model.layout.tensors) {
    const q = model.quantized(t);
    if (t === model.layout.tokEmbeddings) n += q ? q.data.length / t.shape[0] : t.shape[1] * el;
    else n += q?.data.length ?? t.size * el;
  }
  return n;
}

/**
 * Our GEMV kernels alone over a float32 model's own weight matrices, in decode order (each layer's wq, wk, wv, wo, w1,
 * w3, w2, then the head), one x row, `passes` times after one untimed pass: passes per second. Nothing else runs (no
 * embedding, norms, RoPE, attention or sampling), so this is the most tokens/s a batch-1 decode with these kernels
 * can reach on this machine; unlike the 256 MiB read probe it keeps whatever of the weights the last-level cache
 * holds from one pass to the next (a 60 MB model on a 32 MB L3). One process, one rank, unquantized weights only.
 */
export function measureWeightsPass(model: Llama, passes = 50): number {
  if (model.tp.world !== 1) throw new Error('measureWeightsPass: one rank only');
  const be = model.backend;
  const mats: { w: FloatArray; n: number; k: number }[] = [];
  const add = (t: TensorSpec): void => {
    if (model.quantized(t)) throw new Error(`measureWeightsPass: ${t.name} is quantized (float32 weights only)`);
    mats.push({ w: model.params.view(t), n: t.shape[0], k: t.shape[1] });
  };
  for (const l of model.layout.layers) for (const t of [l.wq, l.wk, l.wv, l.wo, l.w1, l.w3, l.w2]) add(t);
  add(model.layout.output);
  const x = be.alloc(Math.max(...mats.map((m) => m.k))).fill(0.01);
  const out = be.alloc(Math.max(...mats.map((m) => m.n)));
  const pass = (): void => {
    for (const m of mats) be.matmul(out, x, m.w, 1, m.k, m.n);
  };
  pass();
  const t0 = performance.now();
  for (let i = 0; i < passes; i++) pass();
  return passes / ((performance.now() - t0) / 1000);
}

/**
 * The CPU's vendor, family and model numbers from /proc/cpuinfo (null elsewhere), for the benches' JSON: the VM's
 * model name alone ("AMD EPYC") did not tell a Zen4 (family 25) from a Zen5 (family 26), whose memory systems and
 * 512-bit units differ enough to reverse a kernel's choice.
 */
export function cpuIdentity(): { vendor: string; family: number; model: number } | null {
  let text: string;
  try {
    text = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return null;
  }
  const field = (name: string): string | undefined => new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(text)?.[1]?.trim();
  const vendor = field('vendor_id'), family = Number(field('cpu family')), model = Number(field('model'));
  return vendor && Number.isFinite(family) && Number.isFinite(model) ? { vendor, family, model } : null;
}

/** The least milliseconds of `reps` calls of f, after one untimed call (which faults the buffers' pages in). */
function bestMs(reps: number, f: () => void): number {
  f();
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    f();
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

export interface ReadBandwidth {
  /** GB/s (1e9 bytes) read: the best of the sweeps; the ceiling of any decode that reads its weights once per token. */
  read_gb_per_s: number;
  /** Bytes of the buffer read (larger than the caches). */
  read_buffer_bytes: number;
  /** Threads that read (the native pool; a JavaScript sum runs on one). */
  read_threads: number;
}

/**
 * The machine's memory read bandwidth: the best of `reps` sweeps summing a buffer of `mib` MiB (larger than the
 * caches) once, over the native pool's threads when the backend is native (the readSum probe: four 16-lane float32
 * sums a thread, each over a contiguous share). Decode at weight_bytes_per_token / this figure per token is the
 * fastest any kernel can stream its weights from memory; it measures the machine, not our GEMV.
 */
export function measureReadBandwidth(backend: Backend, mib = 256, reps = 7, probe?: FloatArray): ReadBandwidth {
  const n = probe ? probe.length : (mib * 2 ** 20) / 4;
  // allocated as the weights are (the native backend advises large buffers onto transparent huge pages): on 4 KiB
  // pages the probe read 10-15% slower than the weights' own stream and decode could beat its "ceiling". A caller
  // that probes again and again passes its own buffer of ones (readProbe), allocated and filled once.
  const src = probe ?? readProbe(backend, mib);
  const addon = (backend as Partial<NativeBackend>).addon;
  const read = addon ? () => addon.readSum(src, n) : () => {
    let s = 0;
    for (let i = 0; i < n; i++) s += src[i];
    return s;
  };
  const best = bestMs(reps, () => {
    if (read() !== n) throw new Error('read-bandwidth probe: wrong sum'); // ones: the sum is exact
  });
  return { read_gb_per_s: (n * 4) / (best / 1000) / 1e9, read_buffer_bytes: n * 4, read_threads: addon ? addon.threads() : 1 };
}

/** A buffer of `mib` MiB of ones for measureReadBandwidth, allocated as the weights are. */
export function readProbe(backend: Backend, mib = 256): FloatArray {
  return backend.alloc((mib * 2 ** 20) / 4).fill(1);
}

export interface CopyBandwidth {
  /** GB/s (1e9 bytes) counting bytes read plus bytes written, as STREAM's Copy does; the best of the copies. */
  copy_gb_per_s: number;
  /** Bytes of each of the two buffers. */
  copy_buffer_bytes: number;
  /** Threads that copied (the native pool; a JavaScript copy runs on one). */
  copy_threads: number;
}

/**
 * The machine's memory copy bandwidth: the best of `reps` copies between two buffers of `mib` MiB (larger than the
 * caches), over the native pool's threads when the backend is native. Weight traffic per decoded token (reads only)
 * over this figure is how far decode is from the memory-bandwidth limit.
 */
export function measureCopyBandwidth(backend: Backend, mib = 128, reps = 5): CopyBandwidth {
  const n = (mib * 2 ** 20) / 4;
  const src = backend.alloc(n).fill(1), dst = backend.alloc(n); // huge pages where the backend gives them, as the weights
  const addon = (backend as Partial<NativeBackend>).addon;
  const copy = addon ? () => addon.copy(dst as Float32Array, src as Float32Array, n) : () => dst.set(src);
  const best = bestMs(reps, copy);
  return { copy_gb_per_s: (2 * n * 4) / (best / 1000) / 1e9, copy_buffer_bytes: n * 4, copy_threads: addon ? addon.threads() : 1 };
}
