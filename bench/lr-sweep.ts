/**
 * Learning-rate sweep for the small presets (issue 18): where the small presets' recipe (src/model/recipe.ts) comes
 * from. Trains mini-260k (byte vocabulary, batch 8 × seq 256) and the demo-sized model (dim 128, 4 layers, batch
 * 8 × seq 128) on the bundled demo mixture (data/recipes/demo.json, byte tokenizer) for a few hundred steps at a few
 * peak learning rates (warmup 10% of the steps, cosine to 10%, AdamW 0.9/0.95, wd 0.1, clip 1.0), and reports the
 * held-out loss at the end of each run. Prints one JSON document.
 *
 *   node dist/bench/lr-sweep.js [--steps N (300)] [--lrs 1e-3,3e-3,1e-2,3e-2] [--only mini-260k,demo] [--data DIR]
 *
 * The whole sweep is sized for a few minutes of CPU; on a machine whose cores are shared the seconds are noisy
 * (the losses are not: every run is deterministic from its seed).
 */
import { parseArgs } from 'node:util';
import { cpus, tmpdir } from 'node:os';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { train } from '../src/training/trainer.js';
import { HYPER_DEFAULTS, type Hyper } from '../src/training/settings.js';
import { openTrainingData } from '../src/data/loader.js';
import { ByteTokenizer } from '../src/tokenizer/bytes.js';
import { createBackend } from '../src/kernels/index.js';
import { makeConfig, paramCount, type LlamaConfig } from '../src/model/config.js';
import { DEMO_MODEL, prepareDemoData } from '../src/cli/demo.js';

const { values } = parseArgs({
  options: { steps: { type: 'string' }, lrs: { type: 'string' }, only: { type: 'string' }, data: { type: 'string' } },
});
const steps = Number(values.steps ?? 300);
const lrs = (values.lrs ?? '1e-3,3e-3,1e-2,3e-2').split(',').map(Number);
const tok = new ByteTokenizer();

interface Case { name: string; config: LlamaConfig; batch: number; seq: number }
const CASES: Case[] = [
  { name: 'mini-260k', config: makeConfig('mini-260k', { vocabSize: tok.vocabSize }), batch: 8, seq: 256 },
  { name: 'demo', config: makeConfig(DEMO_MODEL), batch: 8, seq: 128 },
];
const only = values.only?.split(',');
const cases = CASES.filter((c) => !only || only.includes(c.name));

const data = values.data ?? (await prepareDemoData('runs/demo-data', true));
const backend = createBackend();
const runs: unknown[] = [];
const best: Record<string, { lr: number; final_eval_loss: number }> = {};
for (const c of cases) {
  for (const lr of lrs) {
    const hyper: Hyper = {
      ...HYPER_DEFAULTS, steps, batch: c.batch, seq: c.seq, accum: 1, lr, warmup: Math.round(steps / 10),
      evalEvery: 0, evalBatches: 16, ckptEvery: 0, seed: 1337,
    };
    const d = openTrainingData(data, tok, hyper.seed, hyper.seq);
    const dir = mkdtempSync(join(tmpdir(), 'lr-sweep-'));
    const t0 = performance.now();
    const r = await train({
      config: c.config, backend, hyper, runDir: dir, train: d.train, heldOut: d.heldOut, tokenizer: { kind: 'bytes' }, quiet: true, checkpoints: false,
    });
    const seconds = (performance.now() - t0) / 1000;
    rmSync(dir, { recursive: true, force: true });
    const tail = r.losses.slice(-20);
    const run = {
      model: c.name, params: paramCount(c.config), batch: c.batch, seq: c.seq, steps, lr,
      first_eval_loss: r.firstEvalLoss, final_eval_loss: r.lastEvalLoss, train_loss_last20: tail.reduce((a, b) => a + b, 0) / tail.length,
      diverged: !Number.isFinite(r.lastEvalLoss ?? NaN), seconds: Math.round(seconds * 10) / 10,
    };
    runs.push(run);
    console.error(JSON.stringify(run));
    const e = r.lastEvalLoss ?? Infinity;
    if (Number.isFinite(e) && (!best[c.name] || e < best[c.name].final_eval_loss)) best[c.name] = { lr, final_eval_loss: e };
  }
}

const flags = (cpus()[0] ? readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)?.[1].trim().split(/\s+/).filter((f) => /^(avx|amx)/.test(f)) : []) ?? [];
console.log(JSON.stringify({
  bench: 'lr-sweep', cpu: cpus()[0]?.model ?? 'unknown', cpu_flags: flags, cores: cpus().length, backend: backend.name,
  data: 'bundled demo mixture (data/recipes/demo.json), byte tokenizer', schedule: `warmup ${Math.round(steps / 10)} steps, cosine to 10%, AdamW 0.9/0.95, wd 0.1, clip 1.0`,
  steps, lrs, runs, best,
}, null, 1));
