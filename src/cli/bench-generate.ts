/**
 * `llama-ts bench generate`: one JSON line with prefill and decode tokens/s of the KV-cache decoder.
 * Exported as a function so the CLI's bench command can dispatch to it.
 */
import { parse, int, str } from './args.js';
import { modelOptions, loadModelArg, kvCacheOptions, kvCacheArg } from './infer-common.js';
import { createBackend } from '../kernels/index.js';
import { makeConfig } from '../model/config.js';
import { Llama } from '../model/llama.js';
import { measureGenerate, decodeWeightBytes, measureCopyBandwidth, measureReadBandwidth } from '../inference/bench.js';
import { UserError } from '../util/errors.js';
import { checkThreadCount } from '../util/hardware.js';

const HELP = `usage: llama-ts bench generate (--model PATH | --preset NAME) [--threads N] [--prompt-tokens P] [--tokens N] [--kv-cache f32|f16]

Prints one JSON line: prefill_tokens_per_s (prompt of P random tokens, default 32) and decode_tokens_per_s
(N greedy tokens, batch 1, default 64). --preset uses random weights (speed does not depend on their values).
--threads N sets the native backend's pool size; the reference backend runs on one thread.
Also: weight_bytes_per_token (the weights one decoded token reads: quantized ones as stored),
decode_weight_gb_per_s (that × decode tokens/s) and copy_gb_per_s (the machine's measured copy bandwidth, bytes
read + written, same threads) and read_gb_per_s (a plain read stream over the same threads: weight_bytes_per_token
over it is the fastest any decode can go, read_ceiling_tokens_per_s), so decode's distance from the memory-bandwidth
limit shows. --no-copy skips both probes.
--kv-cache f16 decodes over a half-precision KV cache (the difference shows at long prompts: --prompt-tokens 900).`;

export async function benchGenerate(argv: string[], out: (line: string) => void = (l) => console.log(l)): Promise<number> {
  const { values } = parse(argv, { ...modelOptions, ...kvCacheOptions, preset: { type: 'string' }, threads: { type: 'string' }, 'prompt-tokens': { type: 'string' }, tokens: { type: 'string' }, seed: { type: 'string' }, 'no-copy': { type: 'boolean' } });
  if (values.help) {
    out(HELP);
    return 0;
  }
  const threads = checkThreadCount(int(values.threads, 'threads', 1, 1), '--threads');
  const kvCache = kvCacheArg(values);
  const presetName = str(values.preset);
  if (!!presetName === !!str(values.model)) throw new UserError('give exactly one of --model PATH or --preset NAME');
  let model: Llama;
  let name: string;
  if (presetName) {
    model = new Llama(makeConfig(presetName), createBackend(str(values.backend)));
    model.init(int(values.seed, 'seed', 1, 0));
    name = presetName;
  } else {
    model = loadModelArg(values).model;
    name = str(values.model) as string;
  }
  const pool = model.backend as { setThreads?: (n: number) => number; threads?: () => number };
  if (values.threads !== undefined && pool.setThreads) pool.setThreads(threads);
  const threadsUsed = pool.threads ? pool.threads() : 1;
  const promptTokens = int(values['prompt-tokens'], 'prompt-tokens', Math.min(32, model.config.maxSeqLen - 1), 1);
  const tokens = int(values.tokens, 'tokens', Math.min(64, model.config.maxSeqLen - promptTokens), 1);
  const speed = measureGenerate(model, promptTokens, tokens, 1, kvCache);
  const bytes = decodeWeightBytes(model);
  const copy = values['no-copy'] ? null : measureCopyBandwidth(model.backend);
  const read = values['no-copy'] ? null : measureReadBandwidth(model.backend);
  out(JSON.stringify({
    bench: 'generate', model: name, backend: model.backend.name, dtype: model.backend.dtype, threads_requested: threads,
    threads_used: threadsUsed, batch: 1, kv_cache: kvCache, ...speed,
    weight_bytes_per_token: bytes, decode_weight_gb_per_s: (bytes * speed.decode_tokens_per_s) / 1e9,
    ...(copy ?? {}),
    ...(read ? { ...read, read_ceiling_tokens_per_s: (read.read_gb_per_s * 1e9) / bytes } : {}),
  }));
  return 0;
}
