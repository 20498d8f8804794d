/**
 * The harness against an independent computation: tools/reference/torch_eval.py (PyTorch, full forward passes, no
 * KV cache) wrote the expected log-likelihoods of multiple-choice continuations, conditional and unconditional
 * (acc_answer's "Answer:"), and a rolling document's total; runTask (batched, cached, shared prefills) must agree
 * within 1e-4.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSafetensorsHeader } from '../src/io/safetensors.js';
import { configFromJson } from '../src/model/config.js';
import { Llama } from '../src/model/llama.js';
import { createRefBackend } from '../src/kernels/ref.js';
import { ByteTokenizer } from '../src/tokenizer/bytes.js';
import { loadTask, runTask } from '../src/eval/index.js';

const FIXTURE = fileURLToPath(new URL('../../test/fixtures/torch-eval.safetensors', import.meta.url));
const TOL = 1e-4;

function close(a: number, b: number): boolean {
  return Math.abs(a - b) <= TOL * Math.max(1, Math.abs(b));
}

function setup() {
  const st = readSafetensorsHeader(FIXTURE);
  const config = configFromJson(JSON.parse(st.metadata.config));
  const model = new Llama(config, createRefBackend('f32'));
  for (const t of model.layout.tensors) model.params.view(t).set(st.readF32(`param.${t.name}`));
  return { st, model };
}

const dir = mkdtempSync(join(tmpdir(), 'llama-ts-evalref-'));

test('choice log-likelihoods (with the context and with "Answer:") match PyTorch within 1e-4', async () => {
  const { st, model } = setup();
  const docs = JSON.parse(st.metadata.docs) as object[];
  const f = join(dir, 'mc.jsonl');
  const header = { task: 'ref', output_type: 'multiple_choice', doc_to_text: '{{ctx}}', doc_to_choice: '{{endings}}', doc_to_target: '{{label}}', metric_list: ['acc', 'acc_norm', 'acc_answer'] };
  writeFileSync(f, [header, ...docs].map((d) => JSON.stringify(d)).join('\n'));
  const expect = JSON.parse(st.metadata.loglik) as number[][];
  const expectU = JSON.parse(st.metadata.loglik_unconditional) as number[][];
  for (const batch of [1, 4]) {
    const r = await runTask(model, new ByteTokenizer(), loadTask(f), { batch });
    r.docs.forEach((d, i) => {
      (d.loglik as number[]).forEach((x, j) => assert.ok(close(x, expect[i][j]), `doc ${i} choice ${j}: ${x} vs torch ${expect[i][j]}`));
      (d.loglik_unconditional as number[]).forEach((x, j) => assert.ok(close(x, expectU[i][j]), `doc ${i} choice ${j} | Answer: ${x} vs torch ${expectU[i][j]}`));
    });
  }
});

test('rolling log-likelihood of a document longer than the context matches PyTorch within 1e-4', async () => {
  const { st, model } = setup();
  const f = join(dir, 'ppl.jsonl');
  writeFileSync(f, [{ task: 'ppl', output_type: 'loglikelihood_rolling' }, { text: st.metadata.rolling_text }].map((d) => JSON.stringify(d)).join('\n'));
  const r = await runTask(model, new ByteTokenizer(), loadTask(f), { stride: Number(st.metadata.rolling_stride), batch: 3 });
  const want = Number(st.metadata.rolling_loglik);
  assert.ok(Buffer.byteLength(st.metadata.rolling_text) > 2 * model.config.maxSeqLen, 'the document spans several windows');
  assert.ok(close(r.docs[0].loglik as number, want), `${r.docs[0].loglik} vs torch ${want}`);
});
