/** Options shared by generate, chat, score and bench generate: which model, which backend, how to sample. */
import type { Options, Values } from './args.js';
import { int, num, str } from './args.js';
import { createBackend } from '../kernels/index.js';
import { loadAnyModel, parseFormat, type LoadedModel, type WeightFootprint } from '../io/formats.js';
import { adapterBasePath, readPeftAdapter } from '../io/lora.js';
import { SAMPLING_DEFAULTS } from '../inference/sampler.js';
import { KV_CACHE_TYPES, type GenerateOptions, type KvCacheType } from '../inference/generate.js';
import { UserError } from '../util/errors.js';
import { checkMemory } from './common.js';
import { inferenceMemory } from '../model/memory.js';
import type { LlamaConfig } from '../model/config.js';

export const modelOptions: Options = {
  model: { type: 'string', short: 'm' },
  format: { type: 'string' },
  backend: { type: 'string' },
  force: { type: 'boolean' },
  lora: { type: 'string' },
  'no-mmap': { type: 'boolean' },
  verbose: { type: 'boolean', short: 'v' },
};

export const MODEL_HELP = `model:    --model PATH   checkpoint or run directory, Hugging Face directory, .gguf, or llama2.c .bin
          --format ckpt|hf|gguf|llama2c (default: inferred)  --backend ref|ref-f64
          --lora DIR     apply a LoRA adapter: a PEFT directory (adapter_config.json) or a 'train --lora' run
                         (without --model: the base the adapter records, when that path exists)
          --force        load even when the memory estimate exceeds the available memory (LLAMA_TS_MEMORY_LIMIT, else MemAvailable)
          --no-mmap      read the weights into memory instead of mapping the file (mapped: used in place, read-only)
          --verbose      say how the weights were loaded: mapped or read, which tensors were copied and why`;

/** --kv-cache, for the commands that decode (generate, chat, serve, bench generate). */
export const kvCacheOptions: Options = { 'kv-cache': { type: 'string' } };
export const KV_CACHE_HELP = `cache:    --kv-cache f32|f16  how the KV cache holds keys and values: f32 (default, exact) or f16 (IEEE half, as
          llama.cpp's default: half the memory and half the bytes each decoded token reads from it at long context)`;

/** The KV cache type of --kv-cache (default f32); a one-line error naming the choices otherwise. */
export function kvCacheArg(values: Values): KvCacheType {
  const v = str(values['kv-cache']) ?? 'f32';
  if (!(KV_CACHE_TYPES as readonly string[]).includes(v)) throw new UserError(`--kv-cache must be one of ${KV_CACHE_TYPES.join(', ')}, got '${v}'`);
  return v as KvCacheType;
}

/** The model of --model (and --format, --backend); the memory check counts `caches` full-context KV caches. */
export function loadModelArg(values: Values, caches = 1): LoadedModel {
  const lora = str(values.lora);
  const path = str(values.model) ?? (lora !== undefined ? adapterBasePath(lora) ?? undefined : undefined);
  if (!path) throw new UserError(`--model PATH is required (a checkpoint, Hugging Face directory, .gguf or llama2.c .bin)${lora !== undefined ? "; the adapter's base_model_name_or_path is not a path here" : ''}`);
  const f = str(values.format);
  const backend = createBackend(str(values.backend));
  const verbose = values.verbose ? (line: string) => process.stderr.write(`llama-ts: ${line}\n`) : undefined;
  const loaded = loadAnyModel(path, backend, f ? parseFormat(f, 'format') : undefined, modelMemoryCheck(values, backend.alloc(0).BYTES_PER_ELEMENT, caches), {
    weights: values['no-mmap'] ? 'copy' : 'map', verbose,
  });
  if (lora !== undefined) readPeftAdapter(lora, loaded.model.config, backend).adapter.attach(loaded.model);
  return loaded;
}

/**
 * The check `loadAnyModel` runs before allocating: the model's weights as they will be held (mapped and quantized
 * files at their size, not as float32) + `caches` KV caches, against the available memory.
 */
export function modelMemoryCheck(values: Values, bytesPerFloat: number, caches: number): (config: LlamaConfig, description: string, footprint: WeightFootprint) => void {
  return (config, description, footprint) =>
    checkMemory(`loading ${description}`, inferenceMemory(config, {
      caches, bytesPerFloat, weightBytes: footprint.bytes, loadingCopy: !footprint.mapped, kvBytes: values['kv-cache'] === 'f16' ? 2 : bytesPerFloat,
    }), 'run it on a machine with more memory, or convert it to a smaller model first', values);
}

export const samplingOptions: Options = {
  'max-tokens': { type: 'string', short: 'n' },
  temperature: { type: 'string' },
  'top-k': { type: 'string' },
  'top-p': { type: 'string' },
  seed: { type: 'string' },
  'repeat-penalty': { type: 'string' },
  'repeat-last-n': { type: 'string' },
  stop: { type: 'string', multiple: true },
  'ignore-eos': { type: 'boolean' },
  'context-full': { type: 'string' },
};

export const SAMPLING_HELP = `sampling: --max-tokens N (128) --temperature T (${SAMPLING_DEFAULTS.temperature}; 0 = greedy) --top-k K (0 = off) --top-p P (${SAMPLING_DEFAULTS.topP})
          --seed S (1) --repeat-penalty R (1 = off) --repeat-last-n N (64; 0 = whole context)
stopping: --stop STR (repeatable) --ignore-eos --context-full error|stop|shift (when prompt + max tokens exceed
          the context: 'error' (default) refuses, 'stop' generates until the context is full, 'shift' keeps going,
          restarting the cache from the last half of the context whenever it fills)`;

export function samplingArgs(values: Values, eos: number): Omit<GenerateOptions, 'tokenizer'> {
  const temperature = num(values.temperature, 'temperature', SAMPLING_DEFAULTS.temperature);
  if (temperature < 0) throw new UserError('--temperature must be >= 0');
  const topP = num(values['top-p'], 'top-p', SAMPLING_DEFAULTS.topP);
  if (!(topP > 0 && topP <= 1)) throw new UserError('--top-p must be in (0, 1]');
  const repetitionPenalty = num(values['repeat-penalty'], 'repeat-penalty', 1);
  if (!(repetitionPenalty > 0)) throw new UserError('--repeat-penalty must be > 0');
  const cf = str(values['context-full']) ?? 'error';
  if (cf !== 'error' && cf !== 'stop' && cf !== 'shift') throw new UserError(`--context-full must be 'error', 'stop' or 'shift', got '${cf}'`);
  const stop = values.stop;
  return {
    maxTokens: int(values['max-tokens'], 'max-tokens', 128, 0), temperature, topK: int(values['top-k'], 'top-k', SAMPLING_DEFAULTS.topK, 0), topP,
    seed: int(values.seed, 'seed', 1, 0), repetitionPenalty, repetitionWindow: int(values['repeat-last-n'], 'repeat-last-n', 64, 0),
    stop: Array.isArray(stop) ? stop.map(String) : [], stopTokens: values['ignore-eos'] ? [] : [eos], onContextFull: cf,
  };
}

/**
 * Streamed text to stdout in fewer writes: a piece goes out at once when the last write is `ms` (30) or more ago, else
 * it waits (a timer sends it within `ms`); flush() sends what waits. Each write costs ~60 µs in the generation loop (the
 * stream code runs on caches the weights just swept), 240 of them ~4% of a 240-token `generate` of mini-15m; 30 ms is
 * below what a reader sees.
 */
export class CoalescedWriter {
  private buf = '';
  private last = -Infinity;
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(private readonly out: (s: string) => void = (s) => process.stdout.write(s), private readonly ms = 30) {}

  write(s: string): void {
    if (s.length === 0) return;
    this.buf += s;
    const now = performance.now();
    if (now - this.last >= this.ms) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.ms - (now - this.last));
  }

  flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.buf.length === 0) return;
    const s = this.buf;
    this.buf = '';
    this.last = performance.now();
    this.out(s);
  }
}
