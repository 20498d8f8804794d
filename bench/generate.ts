/**
 * Generation speed: llama-ts's KV-cache decoder vs llama.cpp (node-llama-cpp 3.21.1, CPU) on the same GGUF file, batch 1,
 * same thread count. Prints one JSON object.
 *
 *   node dist/bench/generate.js [--presets mini-42m,mini-110m] [--types q8_0,q4_0] [--threads 1,2] [--rounds 3]
 *                               [--prompt-tokens 32] [--tokens 64] [--peer-kv f16|f32] [--peer-flash-attention auto|on|off]
 *                               [--peer-evaluate on|off] [--peer-max-s 20] [--kv-cache f32|f16]
 *
 * Random-init weights (speed does not depend on the values). For each type our GGUF export of the weights is what
 * both sides run: llama-ts loads it as it would any file (quantized weights kept in their blocks), llama.cpp loads the
 * same file. Each (model, type, threads) is measured `--rounds` times, ours and llama.cpp alternating (the first of
 * the pair swaps every round), and the medians are reported beside every round's numbers: timings on a shared
 * machine drift, interleaving keeps the drift out of the ratio. llama.cpp runs at the fastest settings node-llama-cpp
 * allows (LLAMA_CPP_BEST in bench/llamacpp.ts: F16 KV cache, flash attention 'auto'); its decode is one llama_decode
 * per token through the addon's batch calls, and also (`decode_evaluate_tokens_per_s`) through node-llama-cpp's public
 * `sequence.evaluate`; the ratio is against the faster of the two. A llama.cpp decode loop stops after --peer-max-s
 * seconds (its spinning thread barriers collapse when the cores are oversubscribed; the row keeps the tokens timed). Each row also gives the weight bytes a decoded
 * token reads and the GB/s that makes, beside the machine's copy bandwidth (measured once per thread count).
 * mini-110m is llama2.c's stories110M shape (dim 768, 12 layers, 12 heads, vocab 32000, context 1024). llama.cpp is
 * skipped with a note when tools/llama-cpp-peer is not installed.
 *
 * --kv-cache f16 runs ours over an F16 KV cache (llama.cpp's is F16 by default); it matters at long prompts
 * (--prompt-tokens 900), where a decoded token reads the cache as well as the weights.
 *
 * LLAMA_BENCH=/path/to/llama-bench adds llama.cpp's own benchmark (built outside the repository, e.g. from
 * node-llama-cpp's bundled sources: `git clone tools/llama-cpp-peer/node_modules/node-llama-cpp/llama/gitRelease.bundle
 * src && cmake -S src -B src/build -DGGML_NATIVE=ON -DLLAMA_CURL=OFF && cmake --build src/build --target llama-bench`)
 * on the same file and thread count, one `-r 1` run per round in the same alternation: native llama.cpp with its
 * persistent thread pool, no Node in the process; its decode is measured after the prompt's tokens are cached
 * (`-d P`), at the positions ours decodes at.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { execFileSync } from 'node:child_process';
import { makeConfig, type LlamaConfig } from '../src/model/config.js';
import { Llama } from '../src/model/llama.js';
import { createBackend } from '../src/kernels/index.js';
import { measureGenerate, decodeWeightBytes, measureCopyBandwidth, cpuIdentity, type CopyBandwidth } from '../src/inference/bench.js';
import { writeLlamaGguf, GGUF_EXPORT_TYPES, type GgufExportType } from '../src/io/gguf-llama.js';
import { loadAnyModel } from '../src/io/formats.js';
import { byteVocab } from '../src/tokenizer/vocab.js';
import { Rng } from '../src/util/rng.js';
import { loadLlamaCpp, cpuLlamaRuntime, LlamaCppPeer, LLAMA_CPP_BEST, PEER_MISSING, type LlamaCppSettings, type LlamaCppSpeed } from './llamacpp.js';
import { KV_CACHE_TYPES, type KvCacheType } from '../src/inference/generate.js';

const { values } = parseArgs({
  options: {
    presets: { type: 'string', default: 'mini-42m,mini-110m' }, threads: { type: 'string', default: '1,2' }, types: { type: 'string', default: 'q8_0,q4_0' },
    'prompt-tokens': { type: 'string', default: '32' }, tokens: { type: 'string', default: '64' }, backend: { type: 'string' },
    rounds: { type: 'string', default: '3' }, 'peer-kv': { type: 'string', default: LLAMA_CPP_BEST.kvCacheType.toLowerCase() },
    'peer-flash-attention': { type: 'string', default: LLAMA_CPP_BEST.flashAttention }, 'peer-evaluate': { type: 'string', default: 'on' },
    'peer-max-s': { type: 'string', default: '20' }, 'kv-cache': { type: 'string', default: 'f32' },
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

const ROUNDS = Number(values.rounds);
const peerKv = String(values['peer-kv']).toUpperCase();
const peerFa = String(values['peer-flash-attention']);
if (peerKv !== 'F16' && peerKv !== 'F32') throw new Error(`--peer-kv: f16 or f32, not ${values['peer-kv']}`);
if (!['auto', 'on', 'off'].includes(peerFa)) throw new Error(`--peer-flash-attention: auto, on or off, not ${peerFa}`);
const peerSettings: LlamaCppSettings = { kvCacheType: peerKv, flashAttention: peerFa as LlamaCppSettings['flashAttention'] };
const peerEvaluate = values['peer-evaluate'] !== 'off';
const peerMaxS = Number(values['peer-max-s']);
const LLAMA_BENCH = process.env.LLAMA_BENCH;
const kvCache = String(values['kv-cache']) as KvCacheType;
if (!KV_CACHE_TYPES.includes(kvCache)) throw new Error(`--kv-cache: ${KV_CACHE_TYPES.join(' or ')}, not ${kvCache}`);

/**
 * One llama-bench measurement at its defaults (F16 KV, flash attention auto), the same positions as ours: the
 * P-token prompt from an empty cache (pp, `-p P -d 0`) and N decoded tokens after P cached ones (tg, `-n N -d P`:
 * ours decodes at positions P..P+N-1).
 */
function llamaBench(path: string, threads: number): { prefill_tokens_per_s: number; decode_tokens_per_s: number } | { error: string } {
  const one = (args: string[]): number => {
    const out = execFileSync(LLAMA_BENCH as string, ['-m', path, '-t', String(threads), ...args, '-r', '1', '-o', 'json'],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 120_000 });
    return (JSON.parse(out) as { avg_ts: number }[])[0]?.avg_ts ?? NaN;
  };
  try {
    return { prefill_tokens_per_s: one(['-p', String(P), '-n', '0']), decode_tokens_per_s: one(['-p', '0', '-n', String(N), '-d', String(P)]) };
  } catch (e) {
    return { error: (e as Error).message.split('\n')[0] };
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const cpuFlags = (/^flags\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1].split(' ') ?? [])
  .filter((f) => /^(avx|fma|f16c|amx)/.test(f));

const peer = await loadLlamaCpp();
const runtime = peer ? await cpuLlamaRuntime(peer) : null;
const llama = runtime?.llama ?? null;
const results: Record<string, unknown>[] = [];
const copyBw = new Map<number, CopyBandwidth>();
const backendName = values.backend === undefined ? undefined : String(values.backend);
const loadBefore = loadavg();
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
      const lc = llama ? await LlamaCppPeer.open(llama, gguf, { threads, contextSize: P + N + 8, batchSize: P, settings: peerSettings }) : null;
      const ours: { prefill_tokens_per_s: number; decode_tokens_per_s: number }[] = [];
      const theirs: LlamaCppSpeed[] = [];
      const native: ReturnType<typeof llamaBench>[] = [];
      try {
        for (let r = 0; r < ROUNDS; r++) {
          const runOurs = () => {
            pool.setThreads?.(threads);
            const g = measureGenerate(model, P, N, 1, kvCache);
            ours.push({ prefill_tokens_per_s: g.prefill_tokens_per_s, decode_tokens_per_s: g.decode_tokens_per_s });
          };
          if (r % 2 === 0) runOurs();
          if (lc) theirs.push(await lc.measure(prompt, N, peerEvaluate, peerMaxS));
          if (LLAMA_BENCH) native.push(llamaBench(gguf, threads));
          if (r % 2 === 1) runOurs();
        }
      } finally {
        await lc?.dispose();
      }
      const oursDecode = median(ours.map((o) => o.decode_tokens_per_s));
      const oursPrefill = median(ours.map((o) => o.prefill_tokens_per_s));
      const row: Record<string, unknown> = {
        model: name, type, threads, batch: 1, prompt_tokens: P, decode_tokens: N, rounds: ROUNDS, weight_bytes_per_token: bytes,
        llama_ts: {
          backend: model.backend.name, threads_used: pool.threads ? pool.threads() : 1, kv_cache: kvCache, prefill_tokens_per_s: oursPrefill,
          decode_tokens_per_s: oursDecode, decode_weight_gb_per_s: (bytes * oursDecode) / 1e9, runs: ours,
        },
        copy_gb_per_s: copyBw.get(threads)?.copy_gb_per_s,
      };
      if (lc) {
        const decode = median(theirs.map((t) => t.decode_tokens_per_s));
        const evaluate = peerEvaluate ? median(theirs.map((t) => t.decode_evaluate_tokens_per_s ?? 0)) : undefined;
        const prefill = median(theirs.map((t) => t.prefill_tokens_per_s));
        const best = Math.max(decode, evaluate ?? 0);
        row.llama_cpp = {
          version: 'node-llama-cpp 3.21.1', weights: `${type.toUpperCase()} (the same GGUF file)`, threads_used: lc.threadsUsed,
          kv_cache: peerSettings.kvCacheType, flash_attention: peerSettings.flashAttention, context_size: lc.contextSize, batch_size: lc.batchSize,
          prefill_tokens_per_s: prefill, decode_tokens_per_s: decode, decode_evaluate_tokens_per_s: evaluate,
          decode_weight_gb_per_s: (bytes * best) / 1e9, runs: theirs,
        };
        row.decode_speed_ratio = oursDecode / best;
        row.prefill_speed_ratio = oursPrefill / prefill;
      }
      if (LLAMA_BENCH) {
        const ok = native.filter((r): r is { prefill_tokens_per_s: number; decode_tokens_per_s: number } => !('error' in r));
        row.llama_bench = {
          binary: LLAMA_BENCH, prefill_tokens_per_s: ok.length ? median(ok.map((r) => r.prefill_tokens_per_s)) : null,
          decode_tokens_per_s: ok.length ? median(ok.map((r) => r.decode_tokens_per_s)) : null, runs: native,
        };
      }
      results.push(row);
      process.stderr.write(`${JSON.stringify({ model: name, type, threads, ours_decode: oursDecode, ours_prefill: oursPrefill,
        llama_cpp: row.llama_cpp ? { decode: (row.llama_cpp as LlamaCppSpeed).decode_tokens_per_s, evaluate: (row.llama_cpp as LlamaCppSpeed).decode_evaluate_tokens_per_s,
          prefill: (row.llama_cpp as LlamaCppSpeed).prefill_tokens_per_s } : null })}\n`);
    }
    rmSync(gguf, { force: true });
  }
  rmSync(dir, { recursive: true, force: true });
}
if (llama) await llama.dispose();
console.log(JSON.stringify({
  bench: 'generate', cpus: cpus().length, cpu: cpus()[0]?.model, cpu_id: cpuIdentity(), cpu_flags: cpuFlags, node: process.version,
  simd: (createBackend(backendName) as { simd?: () => string }).simd?.(), loadavg_before: loadBefore, loadavg_after: loadavg(),
  note: 'medians of `rounds` interleaved runs (ours and llama.cpp alternating); runs lists each. The native backend (default when built) uses the given threads; the reference backend is single-threaded (threads_used 1); llama.cpp uses the given threads. llama.cpp decode_tokens_per_s: one llama_decode per token through the addon batch calls; decode_evaluate_tokens_per_s: node-llama-cpp sequence.evaluate (greedy); decode_speed_ratio is against the faster. copy_gb_per_s counts bytes read + written; weight traffic is reads only.',
  llama_cpp: runtime ? { version: 'node-llama-cpp 3.21.1 (CPU)', build_type: runtime.build_type, cpu_backend: runtime.cpu_backend, system_info: runtime.system_info,
    cpu_math_cores: runtime.cpu_math_cores, settings: peerSettings } : PEER_MISSING,
  results,
}, null, 1));
