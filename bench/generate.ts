/**
 * Generation speed: llama-ts's KV-cache decoder vs llama.cpp (node-llama-cpp, CPU) on the same GGUF file, batch 1.
 * Prints one JSON object.
 *
 *   node dist/bench/generate.js [--presets mini-15m,mini-42m,mini-110m] [--types f32,q8_0,q4_0] [--threads 1,2]
 *                               [--prompt-tokens 32] [--tokens 64]
 *
 * Random-init weights (speed does not depend on the values). For each type our GGUF export of the weights is what
 * both sides run: llama-ts loads it as it would any file (quantized weights kept in their blocks), llama.cpp loads the
 * same file. Each row also gives the weight bytes a decoded token reads and the GB/s that makes, beside the machine's
 * copy bandwidth (measured once per thread count). mini-110m is llama2.c's stories110M shape (dim 768, 12 layers,
 * 12 heads, vocab 32000, context 1024). llama.cpp is skipped with a note when tools/llama-cpp-peer is not installed.
 * Timings on a shared machine are noisy: compare numbers from one run.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { makeConfig, type LlamaConfig } from '../src/model/config.js';
import { Llama } from '../src/model/llama.js';
import { createBackend } from '../src/kernels/index.js';
import { measureGenerate, decodeWeightBytes, measureCopyBandwidth, type CopyBandwidth } from '../src/inference/bench.js';
import { writeLlamaGguf, GGUF_EXPORT_TYPES, type GgufExportType } from '../src/io/gguf-llama.js';
import { loadAnyModel } from '../src/io/formats.js';
import { byteVocab } from '../src/tokenizer/vocab.js';
import { Rng } from '../src/util/rng.js';
import { loadLlamaCpp, cpuLlama, PEER_MISSING, type NodeLlamaCpp } from './llamacpp.js';

const { values } = parseArgs({
  options: {
    presets: { type: 'string', default: 'mini-15m,mini-42m' }, threads: { type: 'string', default: '1,2' }, types: { type: 'string', default: 'f32' },
    'prompt-tokens': { type: 'string', default: '32' }, tokens: { type: 'string', default: '64' }, backend: { type: 'string' },
  },
});
const presets = String(values.presets).split(',');
const types = String(values.types).split(',') as GgufExportType[];
for (const t of types) if (!GGUF_EXPORT_TYPES.includes(t)) throw new Error(`--types: unknown type ${t} (${GGUF_EXPORT_TYPES.join(', ')})`);
const SHAPES: Record<string, () => LlamaConfig> = {
  'mini-110m': () => makeConfig({ dim: 768, nLayers: 12, nHeads: 12, vocabSize: 32000, multipleOf: 32, maxSeqLen: 1024 }),
};
const threadList = String(values.threads).split(',').map(Number);
const P = Number(values['prompt-tokens']);
const N = Number(values.tokens);

async function llamaCppSpeed(llama: NodeLlamaCpp, path: string, prompt: number[], n: number, threads: number) {
  const model = await llama.loadModel({ modelPath: path });
  try {
    const ctx = await model.createContext({ contextSize: prompt.length + n + 8, threads, batchSize: prompt.length, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32' });
    try {
      const seq = ctx.getSequence();
      await seq.evaluateWithoutGeneratingNewTokens(prompt.slice(0, 4)); // warm-up
      await seq.clearHistory();
      const t0 = performance.now();
      await seq.evaluateWithoutGeneratingNewTokens(prompt);
      const t1 = performance.now();
      let count = 0;
      for await (const _t of seq.evaluate([prompt[prompt.length - 1]], { temperature: 0 })) {
        if (++count >= n) break;
      }
      const t2 = performance.now();
      // the first decode step re-evaluates one prompt token; every step yields one new token
      return { prefill_tokens_per_s: prompt.length / ((t1 - t0) / 1000), decode_tokens_per_s: count / ((t2 - t1) / 1000) };
    } finally {
      await ctx.dispose();
    }
  } finally {
    await model.dispose();
  }
}

const peer = await loadLlamaCpp();
const llama = peer ? await cpuLlama(peer) : null;
const results: Record<string, unknown>[] = [];
const copyBw = new Map<number, CopyBandwidth>();
const backendName = values.backend === undefined ? undefined : String(values.backend);
for (const name of presets) {
  const config = SHAPES[name]?.() ?? makeConfig(name);
  const base = new Llama(config, createBackend(backendName));
  const pool = base.backend as { setThreads?: (n: number) => number; threads?: () => number };
  base.init(1);
  const rng = new Rng(7);
  const prompt = Array.from({ length: P }, () => rng.int(config.vocabSize));
  const dir = mkdtempSync(join(tmpdir(), 'llama-ts-bench-'));
  for (const type of types) {
    const gguf = join(dir, `${name}-${type}.gguf`);
    writeLlamaGguf(gguf, base, byteVocab(config.vocabSize), type);
    // f32: the weights in memory as they are; other types: the file loaded as a user would (blocks kept)
    const model = type === 'f32' ? base : loadAnyModel(gguf, base.backend).model;
    const bytes = decodeWeightBytes(model);
    for (const threads of threadList) {
      pool.setThreads?.(threads);
      if (!copyBw.has(threads)) copyBw.set(threads, measureCopyBandwidth(base.backend));
      const ours = measureGenerate(model, P, N);
      const row: Record<string, unknown> = {
        model: name, type, threads, batch: 1, prompt_tokens: P, decode_tokens: N, weight_bytes_per_token: bytes,
        llama_ts: {
          backend: model.backend.name, threads_used: pool.threads ? pool.threads() : 1, prefill_tokens_per_s: ours.prefill_tokens_per_s,
          decode_tokens_per_s: ours.decode_tokens_per_s, decode_weight_gb_per_s: (bytes * ours.decode_tokens_per_s) / 1e9,
        },
        copy_gb_per_s: copyBw.get(threads)?.copy_gb_per_s,
      };
      if (llama) {
        const lc = await llamaCppSpeed(llama, gguf, prompt, N, threads);
        row.llama_cpp = { version: 'node-llama-cpp 3.21.1', weights: `${type.toUpperCase()} (the same GGUF file)`, ...lc };
        row.decode_speed_ratio = ours.decode_tokens_per_s / lc.decode_tokens_per_s;
        row.prefill_speed_ratio = ours.prefill_tokens_per_s / lc.prefill_tokens_per_s;
      }
      results.push(row);
      process.stderr.write(`${JSON.stringify(row)}\n`);
    }
    rmSync(gguf, { force: true });
  }
  rmSync(dir, { recursive: true, force: true });
}
if (llama) await llama.dispose();
console.log(JSON.stringify({
  bench: 'generate', cpus: cpus().length, cpu: cpus()[0]?.model, node: process.version, simd: (createBackend(backendName) as { simd?: () => string }).simd?.(),
  note: 'the native backend (default when built) uses the given threads; the reference backend is single-threaded (threads_used 1); llama.cpp uses the given threads. copy_gb_per_s counts bytes read + written; weight traffic is reads only.',
  llama_cpp: llama ? 'node-llama-cpp 3.21.1 (CPU)' : PEER_MISSING, results,
}, null, 1));
