/** The README's library example works through the package entry point. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Llama, makeConfig, createBackend, paramCount } from '../src/index.js';

test('library API: forward, loss, backward on mini-260k', () => {
  const config = makeConfig('mini-260k', { maxSeqLen: 16 });
  const model = new Llama(config, createBackend('ref'));
  model.init(1);
  assert.equal(model.params.data.length, paramCount(config));
  const batch = 2, seq = 16;
  const tokens = Int32Array.from({ length: batch * seq }, (_, i) => (i * 7) % config.vocabSize);
  const targets = Int32Array.from({ length: batch * seq }, (_, i) => (i * 7 + 7) % config.vocabSize);
  model.forward(tokens, batch, seq);
  const loss = model.loss(targets, 1 / (batch * seq)) / (batch * seq);
  // freshly initialised: close to uniform over the vocabulary
  assert.ok(Math.abs(loss - Math.log(config.vocabSize)) < 0.1, `initial loss ${loss}`);
  model.backward();
  const g = model.grads!;
  assert.ok(g.data.some((x) => x !== 0));
  for (const t of model.layout.tensors) assert.ok(g.view(t).every(Number.isFinite), t.name);
});
