/**
 * Cross-check against an independent implementation: tools/reference/torch_llama.py (PyTorch, float32) wrote the
 * fixture; here the ref backend in float32 must agree on logits, loss, every gradient and three AdamW steps.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { readSafetensorsHeader } from '../src/io/safetensors.js';
import { configFromJson } from '../src/model/config.js';
import { Llama } from '../src/model/llama.js';
import { createRefBackend } from '../src/kernels/ref.js';
import { AdamW, clipGradNorm } from '../src/training/optimizer.js';
import { maxRelErr } from './helpers/gradcheck.js';

const FIXTURE = fileURLToPath(new URL('../../test/fixtures/torch-reference.safetensors', import.meta.url));
const TOL = 1e-4;

function setup() {
  const st = readSafetensorsHeader(FIXTURE);
  const config = configFromJson(JSON.parse(st.metadata.config));
  const B = Number(st.metadata.batch);
  const T = Number(st.metadata.seq);
  const model = new Llama(config, createRefBackend('f32'));
  for (const t of model.layout.tensors) model.params.view(t).set(st.readF32(`param.${t.name}`));
  const tokens = Int32Array.from(st.readF32('tokens'));
  const targets = Int32Array.from(st.readF32('targets'));
  const valid = targets.filter((t) => t >= 0).length;
  return { st, config, model, B, T, tokens, targets, valid };
}

test('logits, loss and every gradient match PyTorch (GQA model, float32, rel err <= 1e-4)', () => {
  const { st, config, model, B, T, tokens, targets, valid } = setup();
  assert.ok(config.nKvHeads < config.nHeads, 'fixture exercises grouped-query attention');
  model.ensureGrads().data.fill(0);
  model.forward(tokens, B, T);
  const logits = model.logits();
  assert.ok(maxRelErr(logits, st.readF32('logits')) <= TOL, `logits rel err ${maxRelErr(logits, st.readF32('logits'))}`);
  const loss = model.loss(targets, 1 / valid) / valid;
  model.backward();
  const torchLoss = st.readF32('loss')[0];
  assert.ok(Math.abs(loss - torchLoss) / torchLoss <= TOL, `loss ${loss} vs ${torchLoss}`);
  for (const t of model.layout.tensors) {
    const err = maxRelErr(model.grads!.view(t), st.readF32(`grad.${t.name}`));
    assert.ok(err <= TOL, `${t.name}: gradient rel err ${err}`);
  }
});

test('three AdamW steps with clipping match torch.optim.AdamW + clip_grad_norm_', () => {
  const { st, model, B, T, tokens, targets, valid } = setup();
  const h = JSON.parse(st.metadata.adamw);
  const opt = new AdamW(model.layout, model.backend, { beta1: h.beta1, beta2: h.beta2, eps: h.eps, weightDecay: h.weightDecay });
  const torchLosses = st.readF32('steps.loss');
  const torchNorms = st.readF32('steps.grad_norm');
  const grads = model.ensureGrads();
  for (let s = 0; s < h.steps; s++) {
    grads.data.fill(0);
    const loss = model.forwardBackward(tokens, targets, B, T, 1 / valid) / valid;
    const norm = clipGradNorm(grads, model.backend, h.clip);
    assert.ok(Math.abs(loss - torchLosses[s]) / torchLosses[s] <= TOL, `step ${s + 1} loss ${loss} vs ${torchLosses[s]}`);
    assert.ok(Math.abs(norm - torchNorms[s]) / torchNorms[s] <= TOL, `step ${s + 1} grad norm ${norm} vs ${torchNorms[s]}`);
    opt.update(model.params, grads, h.lr);
  }
  for (const t of model.layout.tensors) {
    const err = maxRelErr(model.params.view(t), st.readF32(`after.${t.name}`));
    assert.ok(err <= TOL, `${t.name}: weights after ${h.steps} steps rel err ${err}`);
  }
});
