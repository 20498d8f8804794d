/**
 * Generation speed: llama-ts's KV-cache decoder vs llama.cpp (node-llama-cpp, CPU) on our own GGUF export of the
 * same weights (F32), batch 1. Prints one JSON object.
 *
 *   node dist/bench/generate.js [--presets mini-15m,mini-42m] [--threads 1,2] [--prompt-tokens 32] [--tokens 64]
 *
 * Random-init weights (speed does not depend on the values). llama.cpp is skipped with a note when
 * tools/llama-cpp-peer is not installed. Timings on a shared machine are noisy: compare numbers from one run.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { makeConfig } from '../src/model/config.js';
import { Llama } from '../src/model/llama.js';
import { createBackend } from '../src/kernels/index.js';
import { measureGenerate } from '../src/inference/bench.js';
import { writeLlamaGguf } from '../src/io/gguf-llama.js';
import { byteVocab } from '../src/tokenizer/vocab.js';
import { Rng } from '../src/util/rng.js';
import { loadLlamaCpp, cpuLlama, PEER_MISSING, type NodeLlamaCpp } from './llamacpp.js';

const { values } = parseArgs({
  options: {
    presets: { type: 'string', default: 'mini-15m,mini-42m' }, threads: { type: 'string', default: '1,2' },
    'prompt-tokens': { type: 'string', default: '32' }, tokens: { type: 'string', default: '64' }, backend: { type: 'string' },
  },
});
const presets = String(values.presets).split(',');
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
for (const name of presets) {
  const config = makeConfig(name);
  const model = new Llama(config, createBackend(values.backend === undefined ? undefined : String(values.backend)));
  const pool = model.backend as { setThreads?: (n: number) => number; threads?: () => number };
  model.init(1);
  const rng = new Rng(7);
  const prompt = Array.from({ length: P }, () => rng.int(config.vocabSize));
  let gguf: string | null = null;
  let dir: string | null = null;
  if (llama) {
    dir = mkdtempSync(join(tmpdir(), 'llama-ts-bench-'));
    gguf = join(dir, `${name}-f32.gguf`);
    writeLlamaGguf(gguf, model, byteVocab(config.vocabSize), 'f32');
  }
  for (const threads of threadList) {
    pool.setThreads?.(threads);
    const ours = measureGenerate(model, P, N);
    const row: Record<string, unknown> = {
      model: name, threads, batch: 1, dtype: 'f32', prompt_tokens: P, decode_tokens: N,
      llama_ts: { backend: model.backend.name, threads_used: pool.threads ? pool.threads() : 1, prefill_tokens_per_s: ours.prefill_tokens_per_s, decode_tokens_per_s: ours.decode_tokens_per_s },
    };
    if (llama && gguf) {
      const lc = await llamaCppSpeed(llama, gguf, prompt, N, threads);
      row.llama_cpp = { version: 'node-llama-cpp 3.21.1', weights: 'F32 (our GGUF export)', ...lc };
      row.decode_speed_ratio = ours.decode_tokens_per_s / lc.decode_tokens_per_s;
    }
    results.push(row);
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
}
if (llama) await llama.dispose();
console.log(JSON.stringify({
  bench: 'generate', cpus: cpus().length, cpu: cpus()[0]?.model, node: process.version,
  note: 'the native backend (default when built) uses the given threads; the reference backend is single-threaded (threads_used 1); llama.cpp uses the given threads.',
  llama_cpp: llama ? 'node-llama-cpp 3.21.1 (CPU)' : PEER_MISSING, results,
}, null, 1));
