/**
 * The whole model on the wasm backend against the ref backend (loss and every gradient, an AdamW step, MHA and GQA),
 * KV-cache decoding, and the backend choice: `--backend wasm`, and wasm as the fallback when the native addon is
 * unavailable.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createRefBackend } from '../src/kernels/ref.js';
import { createBackend } from '../src/kernels/index.js';
import { loadWasm } from '../src/kernels/wasm-node.js';
import { Llama } from '../src/model/llama.js';
import { makeConfig, type LlamaConfig } from '../src/model/config.js';
import { Rng } from '../src/util/rng.js';

const loaded = loadWasm();
const skip: false | string = loaded.backend ? false : `wasm backend unavailable: ${loaded.error}`;

function relErr(a: ArrayLike<number>, b: ArrayLike<number>, floor = 0): number {
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), floor, 1e-30);
}

function compare(config: LlamaConfig, B: number, T: number, seed: number): void {
  const wa = new Llama(config, loaded.backend!);
  const ref = new Llama(config, createRefBackend('f32'));
  wa.init(seed);
  ref.params.data.set(wa.params.data);
  const rng = new Rng(seed + 1);
  const tokens = Int32Array.from({ length: B * T }, () => rng.int(config.vocabSize));
  const targets = Int32Array.from({ length: B * T }, () => rng.int(config.vocabSize));
  targets[1] = -1;
  const scale = 1 / (B * T);
  wa.ensureGrads().data.fill(0);
  ref.ensureGrads().data.fill(0);
  const lw = wa.forwardBackward(tokens, targets, B, T, scale);
  const lr = ref.forwardBackward(tokens, targets, B, T, scale);
  assert.ok(Math.abs(lw - lr) <= 1e-5 * Math.abs(lr), `loss wasm ${lw} vs ref ${lr}`);
  const gw = wa.grads!, gr = ref.grads!;
  const floor = 1e-3 * Math.sqrt(ref.backend.sumSquares(gr.data, gr.data.length));
  for (const t of wa.layout.tensors) {
    const e = relErr(gw.view(t), gr.view(t), floor);
    assert.ok(e < 2e-4, `${t.name}: relative gradient error ${e}`);
  }
  const n = wa.layout.total;
  const m1 = wa.backend.alloc(n), v1 = wa.backend.alloc(n), m2 = new Float32Array(n), v2 = new Float32Array(n);
  const h = { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0, step: 1 };
  wa.backend.adamw(wa.params.data, gr.data, m1, v1, n, h);
  ref.backend.adamw(ref.params.data, gr.data, m2, v2, n, h);
  assert.ok(relErr(wa.params.data, ref.params.data) < 1e-6);
}

test('whole model wasm vs ref: loss and all gradients (GQA, T not a multiple of the blocks)', { skip }, () => {
  compare(makeConfig({ dim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 300, multipleOf: 16, maxSeqLen: 128 }), 2, 100, 1);
});

test('whole model wasm vs ref: plain MHA, T = 1', { skip }, () => {
  compare(makeConfig({ dim: 48, nLayers: 2, nHeads: 3, vocabSize: 97, multipleOf: 8, maxSeqLen: 16 }), 3, 1, 2);
});

test('whole model wasm vs ref: mini-260k shape, seq 130', { skip }, () => {
  compare(makeConfig('mini-260k'), 2, 130, 3);
});

test('KV-cache decoding on wasm matches full recomputation', { skip }, async () => {
  const { Decoder } = await import('../src/inference/generate.js');
  const config = makeConfig({ dim: 36, nLayers: 2, nHeads: 6, nKvHeads: 2, vocabSize: 259, multipleOf: 16, maxSeqLen: 64 });
  const m = new Llama(config, loaded.backend!);
  m.init(5);
  const rng = new Rng(21);
  const toks = Array.from({ length: 40 }, () => rng.int(config.vocabSize));
  const V = config.vocabSize;
  m.forward(Int32Array.from(toks), 1, toks.length);
  const full = Float32Array.from(m.logits() as Float32Array);
  const d = new Decoder(m);
  const c = d.newCache();
  d.step([{ cache: c, tokens: toks.slice(0, 3) }], 'all');
  for (let p = 3; p < toks.length; p++) {
    const a = d.step([{ cache: c, tokens: [toks[p]] }])[0];
    let e = 0;
    for (let j = 0; j < V; j++) e = Math.max(e, Math.abs(a[j] - full[p * V + j]));
    assert.ok(e <= 1e-4, `position ${p}: |Δ| vs recompute ${e}`);
  }
});

test('createBackend knows wasm, and falls back to it (with a notice) when the native addon is unavailable', { skip }, () => {
  assert.equal(createBackend('wasm').name, 'wasm');
  const code = "import('./dist/src/kernels/index.js').then(m => console.log(m.createBackend().name))";
  const r = execFileSync(process.execPath, ['-e', code], { env: { ...process.env, LLAMA_TS_NO_NATIVE: '1' }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  assert.equal(r.trim(), 'wasm');
  const both = execFileSync(process.execPath, ['-e', code], { env: { ...process.env, LLAMA_TS_NO_NATIVE: '1', LLAMA_TS_NO_WASM: '1' }, encoding: 'utf8' });
  assert.equal(both.trim(), 'ref');
});
