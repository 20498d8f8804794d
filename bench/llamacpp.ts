/**
 * Loads node-llama-cpp (llama.cpp) from the optional peer folder tools/llama-cpp-peer, installed with
 * `npm ci --omit=optional` there (.ci/run does it). Returns null when that folder is not installed, so tests
 * and benchmarks can skip with a clear message; users' `npm install` never pulls llama.cpp in.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const PEER_DIR = fileURLToPath(new URL('../../tools/llama-cpp-peer/', import.meta.url));
const ENTRY = `${PEER_DIR}node_modules/node-llama-cpp/dist/index.js`;

// The module's types are not visible to tsc from here; the few calls we make are typed loosely.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type NodeLlamaCpp = any;

export const PEER_MISSING = `llama.cpp peer not installed: run 'npm ci --omit=optional' in tools/llama-cpp-peer`;

export async function loadLlamaCpp(): Promise<NodeLlamaCpp | null> {
  if (!existsSync(ENTRY)) return null;
  return import(pathToFileURL(ENTRY).href);
}

/** A CPU-only llama.cpp runtime (never builds or downloads anything). */
export async function cpuLlama(m: NodeLlamaCpp): Promise<NodeLlamaCpp> {
  return m.getLlama({ gpu: false, build: 'never', logLevel: (process.env.LLAMA_CPP_LOG ?? 'error'), progressLogs: false });
}

/** What the loaded llama.cpp runs on: the ggml CPU variant the prebuilt picked for this CPU, and its feature line. */
export interface LlamaCppRuntime {
  llama: NodeLlamaCpp;
  /** node-llama-cpp's build type: 'prebuilt' (the binaries shipped in @node-llama-cpp/linux-x64) or 'localBuild'. */
  build_type: string;
  /** The libggml-cpu-*.so variant ggml's backend loader chose for this CPU (e.g. zen4, icelake, haswell). */
  cpu_backend: string | null;
  /** llama.cpp's system info line (the SIMD features the loaded CPU backend was compiled for). */
  system_info: string;
  cpu_math_cores: number;
}

/**
 * cpuLlama, also recording which CPU backend variant ggml loaded (from its load_backend log line, read while the
 * runtime starts; afterwards only errors are printed).
 */
export async function cpuLlamaRuntime(m: NodeLlamaCpp): Promise<LlamaCppRuntime> {
  let cpuBackend: string | null = null;
  const quiet = process.env.LLAMA_CPP_LOG ?? 'error';
  const llama = await m.getLlama({
    gpu: false, build: 'never', logLevel: 'debug', progressLogs: false,
    logger: (level: string, message: string) => {
      const hit = /loaded CPU backend from .*libggml-cpu-?([\w-]*)\.so/.exec(message);
      if (hit) cpuBackend = hit[1] || 'cpu';
      else if (level === 'error' || level === 'fatal') process.stderr.write(`[llama.cpp] ${message}\n`);
    },
  });
  llama.logLevel = quiet;
  return { llama, build_type: llama.buildType, cpu_backend: cpuBackend, system_info: String(llama.systemInfo).trim(), cpu_math_cores: llama.cpuMathCores };
}

/**
 * The llama.cpp settings a speed comparison uses. The defaults are the fastest node-llama-cpp 3.21.1 allows on CPU
 * (measured, see docs/INFERENCE.md "Speed"): the default F16 KV cache — an F32 KV cache with flash attention (which
 * `flashAttention: 'auto'` turns on for CPU) makes llama.cpp cast every layer's whole K and V views to F16 on every
 * decoded token (llama-graph.cpp build_attn_mha), 3× slower decode on mini-15m.
 */
export interface LlamaCppSettings {
  kvCacheType: 'F16' | 'F32';
  flashAttention: 'auto' | 'on' | 'off';
}
export const LLAMA_CPP_BEST: LlamaCppSettings = { kvCacheType: 'F16', flashAttention: 'auto' };

export interface LlamaCppSpeed {
  prefill_tokens_per_s: number;
  /** One llama_decode per token through the addon's batch API (what llama-cli does per token; no sampling). */
  decode_tokens_per_s: number;
  /** node-llama-cpp's public LlamaContextSequence.evaluate generator, greedy (temperature 0): its sampler and JS loop. */
  decode_evaluate_tokens_per_s?: number;
  /** Tokens the decode loops timed: fewer than asked when a loop ran past `maxSeconds` (a collapsed run). */
  decode_tokens: number;
  decode_evaluate_tokens?: number;
}

/**
 * One model file in llama.cpp with a context of fixed thread count, measured repeatedly. Decode is timed two ways:
 * `decode_tokens_per_s` drives llama_decode one token at a time through node-llama-cpp's native batch calls
 * (initBatch/addToBatch/decodeBatch — internal to node-llama-cpp 3.21.1, which is pinned), so it contains llama.cpp's
 * decode and one async hop per token and nothing of node-llama-cpp's JavaScript token loop; `decode_evaluate_…` is
 * what a node-llama-cpp user gets from `sequence.evaluate`. Prefill is one llama_decode of the whole prompt (batch =
 * prompt length, logits for the last token only).
 */
export class LlamaCppPeer {
  private constructor(
    private readonly model: NodeLlamaCpp, private readonly ctx: NodeLlamaCpp, private readonly seq: NodeLlamaCpp,
    readonly threadsUsed: number, readonly settings: LlamaCppSettings, readonly contextSize: number, readonly batchSize: number,
  ) {}

  static async open(llama: NodeLlamaCpp, path: string, o: { threads: number; contextSize: number; batchSize: number; settings?: LlamaCppSettings }): Promise<LlamaCppPeer> {
    const settings = o.settings ?? LLAMA_CPP_BEST;
    const model = await llama.loadModel({ modelPath: path });
    const ctx = await model.createContext({
      contextSize: o.contextSize, batchSize: o.batchSize, threads: o.threads,
      flashAttention: settings.flashAttention === 'auto' ? 'auto' : settings.flashAttention === 'on',
      experimentalKvCacheKeyType: settings.kvCacheType, experimentalKvCacheValueType: settings.kvCacheType,
    });
    const seq = ctx.getSequence();
    if (typeof ctx._ctx?.decodeBatch !== 'function' || typeof seq._sequenceId !== 'number') {
      throw new Error('node-llama-cpp internals changed (expected 3.21.1): LlamaContext._ctx.decodeBatch / sequence._sequenceId missing');
    }
    return new LlamaCppPeer(model, ctx, seq, ctx._ctx.getThreads(), settings, o.contextSize, o.batchSize);
  }

  private async decode(tokens: number[], pos: number): Promise<void> {
    const c = this.ctx._ctx;
    c.initBatch(tokens.length);
    c.addToBatch(this.seq._sequenceId, pos, Uint32Array.from(tokens), Uint32Array.of(tokens.length - 1));
    await c.decodeBatch();
  }

  private clear(): void {
    this.ctx._ctx.removeTokenCellsFromSequence(this.seq._sequenceId, 0, this.contextSize + 1);
  }

  /**
   * Prefills `prompt`, then decodes `n` tokens one at a time (and again through sequence.evaluate when `evaluate`).
   * A decode loop that runs past `maxSeconds` stops early and reports the speed of the steps it did (llama.cpp's
   * spinning thread barriers can collapse to a few tokens/s when the cores are oversubscribed).
   */
  async measure(prompt: number[], n: number, evaluate = true, maxSeconds = Infinity): Promise<LlamaCppSpeed> {
    const P = prompt.length;
    // warm-up: a short prefill and a few decode steps (first-touch of the mapped weights, buffers)
    await this.decode(prompt.slice(0, Math.min(4, P)), 0);
    for (let i = 0; i < 4; i++) await this.decode([prompt[i % P]], Math.min(4, P) + i);
    this.clear();
    const t0 = performance.now();
    await this.decode(prompt, 0);
    const t1 = performance.now();
    // token values do not change the work: the prompt's tokens, cycled, stand in for sampled ones
    let done = 0;
    while (done < n && performance.now() - t1 < maxSeconds * 1000) {
      await this.decode([prompt[(P - 1 + done) % P]], P + done);
      done++;
    }
    const t2 = performance.now();
    this.clear();
    const out: LlamaCppSpeed = { prefill_tokens_per_s: P / ((t1 - t0) / 1000), decode_tokens_per_s: done / ((t2 - t1) / 1000), decode_tokens: done };
    if (evaluate) {
      await this.seq.clearHistory();
      await this.seq.evaluateWithoutGeneratingNewTokens(prompt);
      const t3 = performance.now();
      let count = 0;
      // the first step evaluates the prompt's last token again at position P; every step yields one token
      for await (const _t of this.seq.evaluate([prompt[P - 1]], { temperature: 0 })) {
        if (++count >= n || performance.now() - t3 >= maxSeconds * 1000) break;
      }
      out.decode_evaluate_tokens_per_s = count / ((performance.now() - t3) / 1000);
      out.decode_evaluate_tokens = count;
      await this.seq.clearHistory();
    }
    return out;
  }

  async dispose(): Promise<void> {
    await this.ctx.dispose();
    await this.model.dispose();
  }
}
