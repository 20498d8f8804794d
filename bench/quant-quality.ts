/**
 * Quality of quantization, measured (issue 16's goal: mean KL divergence from F32 < 0.01 for Q8_0, < 0.1 for Q4_0):
 * a trained model (default: the demo's, `npm run demo` → runs/demo) is exported to GGUF at each type, each file is
 * loaded as a user would load it (quantized weights kept in their blocks, native kernels) and scored against the F32
 * weights on held-out tokens of its training data (default: runs/demo-data, the first source's held-out shard),
 * in windows of the model's context, once as prefilled (float products on the dequantized weights) and once as decoded
 * token by token (int8 activations as well). Prints one JSON object: per type and mode the perplexities, mean / p99 /
 * max KL and the top-1 agreement (compareModels in src/inference/score.ts; `llama-ts score --model Q --reference F` prints the same).
 *
 *   node dist/bench/quant-quality.js [--checkpoint runs/demo] [--data runs/demo-data] [--tokens 8192]
 *                                    [--types q8_0,q4_0,q4_k]
 */
import { mkdtempSync, readdirSync, rmSync, existsSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createBackend } from '../src/kernels/index.js';
import { loadAnyModel } from '../src/io/formats.js';
import { writeLlamaGguf, type GgufExportType } from '../src/io/gguf-llama.js';
import { byteVocab } from '../src/tokenizer/vocab.js';
import { Decoder } from '../src/inference/generate.js';
import { compareModels } from '../src/inference/score.js';
import { ShardReader } from '../src/data/shard.js';

const { values } = parseArgs({
  options: {
    checkpoint: { type: 'string', default: 'runs/demo' }, data: { type: 'string', default: 'runs/demo-data' },
    tokens: { type: 'string', default: '8192' }, types: { type: 'string', default: 'q8_0,q4_0,q4_k' },
  },
});
const ckpt = String(values.checkpoint), data = String(values.data), want = Number(values.tokens);
if (!existsSync(ckpt)) throw new Error(`no model at ${ckpt}: run 'npm run demo' first (or give --checkpoint)`);

// held-out tokens: the first source directory's held-out shards, in order
const src = readdirSync(data, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort()[0];
const shards = readdirSync(join(data, src)).filter((f) => f.startsWith('heldout-')).sort();
const ids: number[] = [];
for (const f of shards) {
  const r = new ShardReader(join(data, src, f));
  const n = Math.min(r.header.tokens, want - ids.length);
  const buf = new Int32Array(n);
  r.read(0, n, buf, 0);
  r.close();
  ids.push(...buf);
  if (ids.length >= want) break;
}

const backend = createBackend();
const ref = loadAnyModel(ckpt, backend);
const dir = mkdtempSync(join(tmpdir(), 'llama-ts-quality-'));
const vocab = ref.vocab ?? byteVocab(ref.model.config.vocabSize);
const results: Record<string, unknown>[] = [];
try {
  for (const type of String(values.types).split(',') as GgufExportType[]) {
    const path = join(dir, `${type}.gguf`);
    writeLlamaGguf(path, ref.model, vocab, type);
    const q = loadAnyModel(path, backend).model;
    const types = [...new Set(q.layout.tensors.map((t) => q.quantized(t)?.type).filter(Boolean))];
    // as a prompt is prefilled (128 rows per step: float products on the dequantized weights) and as tokens are
    // decoded (one row per step: int8 activations too)
    for (const [mode, chunk] of [['prefill', 128], ['decode', 1]] as const) {
      const t0 = performance.now();
      const r = compareModels(new Decoder(q), new Decoder(ref.model), ids, undefined, chunk);
      results.push({ type, mode, quantized_as: types, ...r, seconds: (performance.now() - t0) / 1000 });
      process.stderr.write(`${type} ${mode}: mean KL ${r.mean_kl.toFixed(5)}, ppl ${r.model.perplexity.toFixed(4)} vs ${r.reference.perplexity.toFixed(4)}\n`);
    }
    rmSync(path, { force: true });
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(JSON.stringify({
  bench: 'quant-quality', model: ckpt, config: ref.model.config, held_out: `${join(data, src)} (${shards.join(', ')})`, tokens: ids.length,
  cpu: cpus()[0]?.model, goals: { q8_0_mean_kl: '< 0.01', q4_0_mean_kl: '< 0.1' }, results,
}, null, 1));
