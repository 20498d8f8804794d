import { existsSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadRecipe } from '../data/recipe.js';
import { prepareData, MANIFEST } from '../data/prepare.js';
import { join } from 'node:path';
import type { Command } from './main.js';
import { parse, num, str } from './args.js';
import { runTraining, trainOptions, dashboardFlag } from './train.js';
import { printSamples } from './generate.js';
import { createBackend } from '../kernels/index.js';
import { Llama } from '../model/llama.js';
import { makeConfig } from '../model/config.js';
import { HYPER_DEFAULTS, type Hyper } from '../training/trainer.js';
import { ByteTokenizer } from '../tokenizer/bytes.js';
import { Rng } from '../util/rng.js';

/** The demo model: small enough to learn English spelling and common words in minutes on two cores. */
export const DEMO_MODEL = { dim: 128, nLayers: 4, nHeads: 4, nKvHeads: 2, multipleOf: 32, maxSeqLen: 128, vocabSize: new ByteTokenizer().vocabSize };

/** The bundled demo mixture: Brown corpus, Node.js API prose, this project's docs (data/recipes/demo.json). */
export const DEMO_RECIPE = fileURLToPath(new URL('../../../data/recipes/demo.json', import.meta.url));

/** Prepares the demo mixture with the byte tokenizer (once; later runs reuse the shards). */
export async function prepareDemoData(out: string, quiet: boolean): Promise<string> {
  if (!existsSync(join(out, MANIFEST))) {
    const r = await prepareData({ recipe: loadRecipe(DEMO_RECIPE), out, tokenizerPath: null, force: true, quiet });
    if (!quiet) console.error(`demo data: ${r.tokens.toLocaleString('en-US')} tokens from ${(r.bytesIn / 1e6).toFixed(1)} MB in ${r.seconds.toFixed(1)} s → ${out}`);
  }
  return out;
}

/** Milliseconds of one training step of this shape on this backend (two steps, the second timed). */
function timeOneStep(backendName: string | undefined, batch: number, seq: number): number {
  const model = new Llama(makeConfig(DEMO_MODEL), createBackend(backendName));
  model.init(1);
  const rng = new Rng(1);
  const toks = Int32Array.from({ length: batch * seq }, () => 3 + rng.int(256));
  let ms = 0;
  for (let i = 0; i < 2; i++) {
    const t0 = performance.now();
    model.forwardBackward(toks, toks, batch, seq, 1 / toks.length);
    ms = performance.now() - t0;
  }
  return ms;
}

export const command: Command = {
  async run(argv) {
    const { values } = parse(dashboardFlag(argv), { ...trainOptions, minutes: { type: 'string' } });
    if (values.help) {
      console.log('usage: llama-ts demo [--minutes M (3)] [--out DIR (runs/demo)] [--data DIR] [--backend NAME] [any train option]');
      console.log(`Without --data, prepares the bundled mixture (${DEMO_RECIPE}) into runs/demo-data once and trains on it.`);
      return 0;
    }
    if (values.data === undefined) values.data = await prepareDemoData('runs/demo-data', Boolean(values.quiet));
    const minutes = num(values.minutes, 'minutes', 3);
    const batch = 8;
    const seq = DEMO_MODEL.maxSeqLen;
    const stepMs = timeOneStep(str(values.backend), batch, seq) * 1.15; // optimizer, eval and logging overhead
    const steps = Math.max(20, Math.min(20000, Math.floor((minutes * 60_000) / stepMs)));
    const hyper: Hyper = {
      ...HYPER_DEFAULTS, steps, batch, seq, lr: 3e-3, warmup: Math.min(100, Math.ceil(steps / 10)),
      evalEvery: Math.max(10, Math.round(steps / 5)), evalBatches: 8, ckptEvery: Math.max(10, Math.round(steps / 4)), seed: 1337,
    };
    if (values['sample-every'] === undefined) {
      values['sample-every'] = String(hyper.evalEvery); // samples at the evaluations, for the dashboard
      values['sample-prompt'] ??= 'The ';
    }
    const out = str(values.out) ?? 'runs/demo';
    if (!values.resume) rmSync(out, { recursive: true, force: true });
    console.error(`demo: ~${minutes} min budget, ${stepMs.toFixed(0)} ms/step measured → ${steps} steps of ${batch}×${seq} tokens`);
    if (values.dashboard === undefined) console.error(`watch it live: npx llama-ts dashboard ${out}   (in another terminal; or run the demo with --dashboard)`);
    const cfg = makeConfig(DEMO_MODEL);
    const r = await runTraining(
      { dim: String(cfg.dim), layers: String(cfg.nLayers), heads: String(cfg.nHeads), 'kv-heads': String(cfg.nKvHeads), 'multiple-of': String(cfg.multipleOf), seq: String(seq), ...values },
      { out, hyper },
    );
    const ln = Math.log(cfg.vocabSize);
    console.log(`\nheld-out loss: ${r.firstEvalLoss?.toFixed(3)} at start (ln(vocab) = ${ln.toFixed(3)}) → ${r.lastEvalLoss?.toFixed(3)} after ${r.steps} steps (nats per byte)\n`);
    const tok = new ByteTokenizer();
    await printSamples(r.model, tok, 'The ', 3, { maxTokens: 240, temperature: 0.8, topK: 0, topP: 0.95, seed: 7, stopTokens: [tok.eosId], onContextFull: 'shift' });
    console.log(`\ncheckpoint: ${r.checkpoint}   (try: npx llama-ts generate --model ${out} --prompt "It was" --count 2 -n 200 --context-full shift)`);
    console.log(`dashboard:  npx llama-ts dashboard ${out}   (charts of this run in the browser; llama-ts plot ${out} --out curves.svg for a file)`);
    return 0;
  },
};
