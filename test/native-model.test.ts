/** The whole model on the native backend against the ref backend: loss and every gradient, plus an AdamW step. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRefBackend } from '../src/kernels/ref.js';
import { createBackend } from '../src/kernels/index.js';
import { Llama } from '../src/model/llama.js';
import { makeConfig, type LlamaConfig } from '../src/model/config.js';
import { Rng } from '../src/util/rng.js';
import { skip, native } from './helpers/native.js';

/** ‖a − b‖ / max(‖b‖, floor): floor keeps tensors whose exact gradient is 0 (wq, wk at T = 1) from dividing noise by 0. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>, floor = 0): number {
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), floor, 1e-30);
}

function compare(config: LlamaConfig, B: number, T: number, seed: number): void {
  const nat = new Llama(config, native());
  const ref = new Llama(config, createRefBackend('f32'));
  nat.init(seed);
  ref.params.data.set(nat.params.data);
  const rng = new Rng(seed + 1);
  const tokens = Int32Array.from({ length: B * T }, () => rng.int(config.vocabSize));
  const targets = Int32Array.from({ length: B * T }, () => rng.int(config.vocabSize));
  targets[1] = -1;
  const scale = 1 / (B * T);
  nat.ensureGrads().data.fill(0);
  ref.ensureGrads().data.fill(0);
  const ln = nat.forwardBackward(tokens, targets, B, T, scale);
  const lr = ref.forwardBackward(tokens, targets, B, T, scale);
  assert.ok(Math.abs(ln - lr) <= 1e-5 * Math.abs(lr), `loss native ${ln} vs ref ${lr}`);
  const gn = nat.grads!, gr = ref.grads!;
  const floor = 1e-3 * Math.sqrt(ref.backend.sumSquares(gr.data, gr.data.length));
  for (const t of nat.layout.tensors) {
    const e = relErr(gn.view(t), gr.view(t), floor);
    assert.ok(e < 2e-4, `${t.name}: relative gradient error ${e}`);
  }
  // one optimizer step over the flat buffers
  const n = nat.layout.total;
  const m1 = new Float32Array(n), v1 = new Float32Array(n), m2 = new Float32Array(n), v2 = new Float32Array(n);
  const h = { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0, step: 1 };
  nat.backend.adamw(nat.params.data, gr.data, m1, v1, n, h);
  ref.backend.adamw(ref.params.data, gr.data, m2, v2, n, h);
  assert.ok(relErr(nat.params.data, ref.params.data) < 1e-6);
  assert.ok(Math.abs(nat.backend.sumSquares(gn.data, n) - ref.backend.sumSquares(gr.data, n)) < 1e-3 * ref.backend.sumSquares(gr.data, n));
}

test('whole model native vs ref: loss and all gradients (GQA, T not a multiple of the tiles)', { skip }, () => {
  const c = makeConfig({ dim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 300, multipleOf: 16, maxSeqLen: 128 });
  compare(c, 2, 100, 1);
});

test('whole model native vs ref: plain MHA, T = 1', { skip }, () => {
  const c = makeConfig({ dim: 48, nLayers: 2, nHeads: 3, vocabSize: 97, multipleOf: 8, maxSeqLen: 16 });
  compare(c, 3, 1, 2);
});

test('whole model native vs ref: mini-260k shape, seq 130', { skip }, () => {
  compare(makeConfig('mini-260k'), 2, 130, 3);
});

test('whole model native vs ref on the portable (generic) SGEMM path', { skip }, () => {
  const be = native();
  be.addon.setSimd('generic');
  try {
    compare(makeConfig({ dim: 64, nLayers: 1, nHeads: 4, nKvHeads: 1, vocabSize: 200, multipleOf: 16, maxSeqLen: 80 }), 2, 70, 4);
  } finally {
    be.addon.setSimd('default');
  }
});

test('createBackend picks native by default and knows every name', { skip }, () => {
  assert.equal(createBackend().name, 'native');
  assert.equal(createBackend('native').name, 'native');
  assert.equal(createBackend('ref').name, 'ref');
  assert.equal(createBackend('ref-f64').dtype, 'f64');
  assert.throws(() => createBackend('cuda' as 'ref'), /unknown backend 'cuda'/);
});

test('KV-cache decoding on native (GEMV, attentionCached) matches full recomputation and the ref decoder', { skip }, async () => {
  const { Decoder } = await import('../src/inference/generate.js');
  const { peakedModel } = await import('./helpers/models.js');
  // GQA, head dim not a multiple of 8, vocab not a multiple of 8
  const config = makeConfig({ dim: 36, nLayers: 2, nHeads: 6, nKvHeads: 2, vocabSize: 259, multipleOf: 16, maxSeqLen: 64 });
  const ref = peakedModel(config);
  const nat = new Llama(config, native());
  nat.params.data.set(ref.params.data);
  const rng = new Rng(21);
  const toks = Array.from({ length: 50 }, () => rng.int(config.vocabSize));
  const V = config.vocabSize;
  nat.forward(Int32Array.from(toks), 1, toks.length);
  const full = Float32Array.from(nat.logits() as Float32Array);
  const dn = new Decoder(nat), dr = new Decoder(ref);
  for (const threads of [1, 2]) {
    native().setThreads(threads);
    try {
      const cn = dn.newCache(), cr = dr.newCache();
      dn.step([{ cache: cn, tokens: toks.slice(0, 3) }], 'all');
      dr.step([{ cache: cr, tokens: toks.slice(0, 3) }], 'all');
      for (let p = 3; p < toks.length; p++) {
        const a = dn.step([{ cache: cn, tokens: [toks[p]] }])[0];
        const b = dr.step([{ cache: cr, tokens: [toks[p]] }])[0];
        let e1 = 0, e2 = 0;
        for (let j = 0; j < V; j++) {
          e1 = Math.max(e1, Math.abs(a[j] - full[p * V + j]));
          e2 = Math.max(e2, Math.abs(a[j] - b[j]));
        }
        assert.ok(e1 <= 1e-4 && e2 <= 1e-4, `threads ${threads} position ${p}: |Δ| vs recompute ${e1}, vs ref decoder ${e2}`);
      }
    } finally {
      native().setThreads(0);
    }
  }
});

test('decodeLayer: one-token decode steps with each layer in one native call give blockForward\'s bits (GQA, MHA; 1, 2, 3 threads; every SIMD level); quantized and adapted models keep blockForward', { skip }, async () => {
  const { Decoder } = await import('../src/inference/generate.js');
  const { forEachSimd } = await import('./helpers/native.js');
  const be = native();
  const configs = [
    makeConfig({ dim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 259, multipleOf: 32, maxSeqLen: 48 }),
    makeConfig({ dim: 96, nLayers: 3, nHeads: 3, nKvHeads: 3, vocabSize: 300, multipleOf: 32, maxSeqLen: 40 }),
  ];
  const threads = be.threads();
  try {
    forEachSimd(be, (level) => {
      for (const config of configs) {
        const m = new Llama(config, be);
        m.init(11);
        assert.equal(m.canDecodeFused(), true);
        for (const t of [1, 2, 3]) {
          be.setThreads(t);
          const fused = new Decoder(m), plain = new Decoder(m, { fuseLayers: false });
          const cf = fused.newCache(), cp = plain.newCache();
          // a prompt first (blockForward on both), then one-token steps (decodeLayer on one side)
          fused.prefill(cf, [1, 5, 9]);
          plain.prefill(cp, [1, 5, 9]);
          let tok = 7;
          for (let i = 0; i < config.maxSeqLen - 4; i++) {
            const a = Float32Array.from(fused.step([{ cache: cf, tokens: [tok] }])[0]);
            const b = Float32Array.from(plain.step([{ cache: cp, tokens: [tok] }])[0]);
            assert.deepEqual(a, b, `${level} dim ${config.dim} threads ${t} step ${i}`);
            tok = (tok * 37 + 11) % config.vocabSize;
          }
          assert.deepEqual(cf.k, cp.k, 'the same cache rows');
        }
      }
    });
  } finally {
    be.setThreads(threads);
  }
  // the native op against the reference op on one layer (float64 sums there: close, not equal)
  const ref = createRefBackend('f32');
  const c = configs[0];
  const m = new Llama(c, be);
  m.init(5);
  const D = c.dim, hd = D / c.nHeads, qw = c.nHeads * hd, kw = c.nKvHeads * hd, F = m.layout.layers[0].w1.shape[0];
  const rng = new Rng(3);
  const pos = 9;
  const x = Float32Array.from({ length: D }, () => rng.normal());
  const kc = Float32Array.from({ length: (pos + 1) * kw }, () => rng.normal()), vc = Float32Array.from({ length: (pos + 1) * kw }, () => rng.normal());
  const run = (b: typeof be | typeof ref) => {
    const xx = x.slice(), k2 = kc.slice(), v2 = vc.slice();
    const f = (n: number) => new Float32Array(n);
    const w = m.layout.layers[0], p = m.params;
    b.decodeLayer(xx, f(D), f(1), f(qw), f(kw), f(kw), f(qw), f(F), f(F), f(F), p.view(w.attentionNorm), p.view(w.wq), p.view(w.wk), p.view(w.wv), p.view(w.wo),
      p.view(w.ffnNorm), p.view(w.w1), p.view(w.w3), p.view(w.w2), k2, v2, m.rope, D, c.nHeads, c.nKvHeads, F, pos, c.normEps);
    return { x: xx, k: k2, v: v2 };
  };
  const a = run(be), r = run(ref);
  assert.ok(relErr(a.x, r.x) < 1e-5, `x: ${relErr(a.x, r.x)}`);
  assert.ok(relErr(a.k, r.k) < 1e-5 && relErr(a.v, r.v) < 1e-5, 'the new cache row');
  assert.throws(() => be.decodeLayer(x.slice(), new Float32Array(D), new Float32Array(1), new Float32Array(qw), new Float32Array(kw), new Float32Array(kw), new Float32Array(qw),
    new Float32Array(F), new Float32Array(F), new Float32Array(F), new Float32Array(D), new Float32Array(qw * D), new Float32Array(kw * D), new Float32Array(kw * D),
    new Float32Array(D * qw), new Float32Array(D), new Float32Array(F * D), new Float32Array(F * D), new Float32Array(D * F), new Float32Array(pos * kw), new Float32Array((pos + 1) * kw),
    m.rope, D, c.nHeads, c.nKvHeads, F, pos, c.normEps), /kc has/);
  // not fused: a quantized weight, an adapter, several ranks (not tested here), an F16 cache (Decoder checks)
  const q = new Llama(c, be);
  q.init(5);
  const { quantize } = await import('../src/kernels/ops/quant.js');
  const wq = q.layout.layers[0].wq;
  q.setQuantized(wq, { type: 'Q8_0', rows: wq.shape[0], cols: wq.shape[1], data: quantize('Q8_0', q.params.view(wq) as Float32Array) });
  assert.equal(q.canDecodeFused(), false);
  const ad = new Llama(c, be);
  ad.adapter = { forward() {}, backward() {} };
  assert.equal(ad.canDecodeFused(), false);
  assert.equal(new Llama(c, ref).canDecodeFused(), false);
});
