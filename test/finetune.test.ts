/**
 * Fine-tuning (issue 15, item 3): SFT data and its masked loss, --init-from, LoRA runs (exact resume, PEFT files),
 * the CLI's one-line errors, and the demonstration at small scale: the bundled QA task's exact match rises after
 * fine-tuning on the bundled instruction set.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRefBackend } from '../src/kernels/ref.js';
import { nativeAvailable, createNativeBackend } from '../src/kernels/native.js';
import { Llama } from '../src/model/llama.js';
import { LoraAdapter } from '../src/model/lora.js';
import { makeConfig } from '../src/model/config.js';
import { Rng } from '../src/util/rng.js';
import { ByteTokenizer } from '../src/tokenizer/bytes.js';
import { readSftFile, resolveSftTemplate, applyTemplate, tokenizeSft, SftSource, openSftData } from '../src/data/sft.js';
import { maskedScale } from '../src/training/step.js';
import { LOCAL_COMM } from '../src/parallel/comm.js';
import { train, HYPER_DEFAULTS, type Hyper } from '../src/training/trainer.js';
import { readPeftAdapter, writePeftAdapter, peftName } from '../src/io/lora.js';
import { permuteRowsForHf } from '../src/io/model-common.js';
import { saveModelAs } from '../src/io/formats.js';
import { loadTask, buildContext, runTask } from '../src/eval/index.js';
import { checkTensorGrads } from './helpers/gradcheck.js';
import { loadAnyModel } from '../src/io/formats.js';
import { readSafetensorsHeader } from '../src/io/safetensors.js';
import { failsWithOneLine, runCli, root, bin } from './helpers/cli.js';
import { mpiSkip, mpirun } from './helpers/mpi.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'llama-ts-ft-'));
const SFT = join(root, 'data', 'sft', 'facts-instruct.jsonl');
const QA = join(root, 'data', 'tasks', 'facts-qa.jsonl');

function sftFile(lines: string[]): string {
  const p = join(tmp(), 'sft.jsonl');
  writeFileSync(p, lines.join('\n') + '\n');
  return p;
}

test('SFT file: fields checked with file and line; templates by name or text', () => {
  const ok = sftFile(['{"prompt": "a?", "response": "b", "id": 3}', '', '{"prompt": "c?", "response": "d"}']);
  assert.deepEqual(readSftFile(ok).map((e) => [e.prompt, e.response, e.line]), [['a?', 'b', 1], ['c?', 'd', 3]]);
  const bad: [string[], RegExp][] = [
    [['{"prompt": "a", "response": "b"}', '{"prompt": "a"}'], /sft\.jsonl:2: missing field "response"/],
    [['{"response": "b"}'], /sft\.jsonl:1: missing field "prompt"/],
    [['{"prompt": "a", "response": 3}'], /sft\.jsonl:1: field "response" must be a string, got 3/],
    [['{"prompt": "a", "response": ""}'], /sft\.jsonl:1: field "response" is empty/],
    [['{"prompt": "a", "response": "b"}', '{"prompt": "a", "response"'], /sft\.jsonl:2: not valid JSON/],
    [['["a", "b"]'], /sft\.jsonl:1: expected a JSON object/],
    [[''], /has no examples/],
  ];
  for (const [lines, re] of bad) assert.throws(() => readSftFile(sftFile(lines)), (e: Error) => e.name === 'UserError' && re.test(e.message) && !e.message.includes('\n'));
  assert.throws(() => resolveSftTemplate('nope'), /neither a template name \(plain, qa, alpaca, chat\)/);
  assert.throws(() => resolveSftTemplate('{response} then {prompt}'), /--sft-template/);
  assert.throws(() => resolveSftTemplate('Q: {prompt} A: {response} end'), /\{response\} must end the template/);
  assert.equal(resolveSftTemplate('Q: {prompt}\nA: {response}'), 'Q: {prompt}\nA: {response}');
});

test("SFT rows: the qa template's prompt part is the QA task's context, the response follows its target delimiter; only response and EOS are trained", () => {
  const tok = new ByteTokenizer();
  const task = loadTask(QA);
  const doc = task.docs[0];
  const question = JSON.parse(readFileSync(QA, 'utf8').split('\n')[doc.line - 1]).question as string;
  const parts = applyTemplate(resolveSftTemplate('qa'), { prompt: question, response: 'Paris' });
  assert.equal(parts.prompt, buildContext(task.spec, [], doc));
  assert.equal(parts.response, task.spec.targetDelimiter + 'Paris');
  const [row] = tokenizeSft([{ prompt: 'Hi?', response: 'Yo', line: 1 }], tok, resolveSftTemplate('qa'));
  const text = 'Question: Hi?\nAnswer:';
  assert.equal(row.promptLen, 1 + text.length);
  assert.deepEqual(Array.from(row.ids), [tok.bosId, ...tok.encode(text), ...tok.encode(' Yo'), tok.eosId]);
  const seq = row.ids.length + 2; // two positions of padding
  const b = new SftSource([row], 1).next(1, seq);
  const trained = Array.from(b.targets).map((t, j) => (t >= 0 ? j : -1)).filter((j) => j >= 0);
  // the targets at positions promptLen-1 … are ' ', 'Y', 'o', EOS; everything else is -1
  assert.deepEqual(trained, [row.promptLen - 1, row.promptLen, row.promptLen + 1, row.promptLen + 2]);
  assert.deepEqual(trained.map((j) => b.targets[j]), [...tok.encode(' Yo'), tok.eosId]);
  for (const j of trained) assert.equal(b.tokens[j + 1] ?? tok.eosId, b.targets[j] === tok.eosId ? tok.eosId : b.targets[j]);
  // a row longer than seq is cut at seq
  const short = new SftSource([row], 1).next(1, 5);
  assert.ok(short.targets.every((t) => t === -1));
});

test('SftSource: seeded order, reshuffled per epoch, exact position on restore; held-out is every tenth example', () => {
  const tok = new ByteTokenizer();
  const data = openSftData(SFT, tok, 7, 64, 'qa');
  assert.equal(data.trainExamples + data.heldOutExamples, readSftFile(SFT).length);
  assert.equal(data.heldOutExamples, Math.floor(readSftFile(SFT).length / 10));
  const a = data.train;
  for (let i = 0; i < 30; i++) a.next(4, 64); // more than an epoch
  const saved = JSON.parse(JSON.stringify(a.state()));
  const next = a.next(4, 64);
  const b = openSftData(SFT, tok, 7, 64, 'qa').train;
  b.restore(saved);
  assert.deepEqual(b.next(4, 64), next);
  assert.throws(() => openSftData(SFT, tok, 7, 64, 'qa').train.restore({ ...saved, examples: 3 }), /trained on 3 SFT examples/);
});

test('masked loss: whole-model gradient of the mean over trained tokens vs finite differences in float64', () => {
  const config = makeConfig({ dim: 16, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 259, multipleOf: 8, maxSeqLen: 24 });
  const model = new Llama(config, createRefBackend('f64'));
  model.init(3);
  const rng = new Rng(5);
  for (let i = 0; i < model.params.data.length; i++) model.params.data[i] += rng.normal() * 0.1;
  const rows = tokenizeSft([{ prompt: 'Sky?', response: 'blue', line: 1 }, { prompt: 'Hot?', response: 'no', line: 2 }], new ByteTokenizer(), 'Q: {prompt} A: {response}');
  const src = new SftSource(rows, 1, false);
  const B = 2, T = 20;
  const batch = src.next(B, T);
  const scale = maskedScale([batch], LOCAL_COMM);
  const trained = Array.from(batch.targets).filter((t) => t >= 0).length;
  assert.ok(trained > 0 && trained < B * T);
  assert.equal(scale, 1 / trained);
  const g = model.ensureGrads();
  g.data.fill(0);
  model.forwardBackward(batch.tokens, batch.targets, B, T, scale);
  const lossOf = () => {
    model.forward(batch.tokens, B, T);
    return model.loss(batch.targets, null) * scale;
  };
  const p = model.params.data as Float64Array;
  checkTensorGrads(model.layout.tensors, p, g.data, lossOf, rng, { samples: 2, floor: 1e-4 });
  // a masked target's logits get no gradient: the loss equals the sum over the trained rows alone
  model.forward(batch.tokens, B, T);
  const all = model.loss(batch.targets, null);
  const only = Int32Array.from(batch.targets, (t, j) => (j === batch.targets.findIndex((x) => x >= 0) ? t : -1));
  const one = model.loss(only, null);
  assert.ok(one > 0 && one < all);
});

for (const [name, mk] of [['ref', () => createRefBackend('f32')], ...(nativeAvailable() ? [['native', () => createNativeBackend()]] : [])] as const) {
  test(`crossEntropy with target -1 (${name}): the row adds nothing to the loss and gets a zero gradient`, () => {
    const be = (mk as () => ReturnType<typeof createRefBackend>)();
    const rng = new Rng(2);
    const rows = 4, V = 37;
    const logits = Float32Array.from({ length: rows * V }, () => rng.normal());
    const targets = Int32Array.from([3, -1, 36, -1]);
    const d = new Float32Array(rows * V).fill(7);
    const l = be.crossEntropy(logits, targets, rows, V, d, 0.5);
    const kept = new Float32Array([...logits.subarray(0, V), ...logits.subarray(2 * V, 3 * V)]);
    const l2 = be.crossEntropy(kept, Int32Array.from([3, 36]), 2, V, null, 0);
    assert.ok(Math.abs(l - l2) < 1e-5);
    assert.ok(d.subarray(V, 2 * V).every((x) => x === 0) && d.subarray(3 * V).every((x) => x === 0));
    assert.ok(d.subarray(0, V).some((x) => x !== 0));
  });
}

// ---------------------------------------------------------------- training runs

const config = makeConfig({ dim: 32, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 259, multipleOf: 8, maxSeqLen: 64 });
const hyper: Hyper = { ...HYPER_DEFAULTS, steps: 8, batch: 2, seq: 64, accum: 2, lr: 5e-3, warmup: 2, evalEvery: 4, evalBatches: 2, ckptEvery: 0, seed: 5 };

function baseModel(): Llama {
  const m = new Llama(config, createRefBackend('f32'));
  m.init(11);
  return m;
}

async function sftRun(runDir: string, h: Hyper, extra: { resume?: boolean; stopAt?: number } = {}) {
  const data = openSftData(SFT, new ByteTokenizer(), h.seed, h.seq, 'qa');
  return train({
    config, backend: createRefBackend('f32'), hyper: h, runDir, train: data.train, heldOut: data.heldOut, tokenizer: { kind: 'bytes' }, quiet: true,
    initFrom: baseModel(), loraTargets: ['wq', 'wv', 'w2'], finetune: { initFrom: '/base', sft: { file: SFT, template: 'qa' } }, ...extra,
  });
}

const bits = (a: ArrayLike<number>) => Buffer.from(Float32Array.from(a).buffer);

for (const lora of [0, 4]) {
  test(`${lora ? 'LoRA' : 'full'} SFT from --init-from: N steps + resume + N steps is bit-identical to 2N straight`, async () => {
    const h = { ...hyper, loraRank: lora, loraAlpha: lora ? 8 : 0 };
    const straight = await sftRun(join(tmp(), 'a'), h);
    const dir = join(tmp(), 'b');
    const first = await sftRun(dir, h, { stopAt: 4 });
    const second = await sftRun(dir, h, { resume: true });
    assert.deepEqual([...first.losses, ...second.losses], straight.losses);
    assert.ok(straight.losses[7] < straight.losses[0]);
    if (!lora) {
      assert.equal(Buffer.compare(bits(second.model.params.data), bits(straight.model.params.data)), 0);
      return;
    }
    // the base stayed frozen; the adapter is in the checkpoint as PEFT files, and equals the straight run's
    assert.equal(Buffer.compare(bits(second.model.params.data), bits(baseModel().params.data)), 0);
    const ck = join(dir, 'checkpoints', 'step-00000008');
    assert.ok(existsSync(join(ck, 'adapter_model.safetensors')) && !existsSync(join(ck, 'model.safetensors')));
    const a = readPeftAdapter(dir, config, createRefBackend('f32')).adapter;
    const s = readPeftAdapter(straight.checkpoint!, config, createRefBackend('f32')).adapter;
    assert.equal(Buffer.compare(bits(a.params.data), bits(s.params.data)), 0);
    assert.ok(a.params.data.some((x, i) => x !== 0 && a.layout.tensors.some((t) => t.name.includes('lora_B') && i >= t.offset && i < t.offset + t.size)));
    const state = JSON.parse(readFileSync(join(ck, 'state.json'), 'utf8'));
    assert.deepEqual(state.lora, { rank: 4, alpha: 8, targets: ['wq', 'wv', 'w2'] });
    assert.match(state.finetune.baseSha256, /^[0-9a-f]{64}$/);
  });
}

test('LoRA resume over a changed base is refused', async () => {
  const h = { ...hyper, loraRank: 2, loraAlpha: 2 };
  const dir = join(tmp(), 'c');
  await sftRun(dir, h, { stopAt: 2 });
  const other = baseModel();
  other.params.data[5] += 1;
  const data = openSftData(SFT, new ByteTokenizer(), h.seed, h.seq, 'qa');
  await assert.rejects(
    train({ config, backend: createRefBackend('f32'), hyper: h, runDir: dir, train: data.train, heldOut: data.heldOut, tokenizer: { kind: 'bytes' }, quiet: true, initFrom: other, resume: true }),
    /has changed since checkpoint/,
  );
});

test("PEFT files: Hugging Face names, q/k rows of B in HF's order, so base_hf + s·B_hf·A_hf is the HF export of the merged model", () => {
  const c = makeConfig({ dim: 16, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 40, multipleOf: 8, maxSeqLen: 16 });
  const be = createRefBackend('f32');
  const ad = new LoraAdapter(c, { rank: 2, alpha: 3, targets: ['wq', 'wk', 'wv', 'wo', 'w1', 'w2', 'w3'] }, be);
  const rng = new Rng(4);
  for (let i = 0; i < ad.params.data.length; i++) ad.params.data[i] = rng.normal();
  const dir = tmp();
  writePeftAdapter(dir, ad, 'my-base');
  const cfg = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
  assert.equal(cfg.peft_type, 'LORA');
  assert.equal(cfg.r, 2);
  assert.equal(cfg.lora_alpha, 3);
  assert.deepEqual(cfg.target_modules, ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'down_proj', 'up_proj']);
  assert.equal(cfg.base_model_name_or_path, 'my-base');
  const st = readSafetensorsHeader(join(dir, 'adapter_model.safetensors'));
  assert.deepEqual(st.tensors.get('base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight')?.shape, [2, 16]);
  assert.deepEqual(st.tensors.get('base_model.model.model.layers.1.mlp.down_proj.lora_B.weight')?.shape, [16, 2]);
  // round trip
  const back = readPeftAdapter(dir, c, be).adapter;
  assert.deepEqual(Array.from(back.params.data), Array.from(ad.params.data));
  // HF convention: q_proj' = q_proj + s·B_hf·A_hf must be the HF permutation of Meta's W + ΔW
  const model = new Llama(c, be);
  model.init(1);
  const merged = new Llama(c, be);
  merged.params.data.set(model.params.data);
  ad.mergeInto(merged);
  const hd = 4;
  for (const [target, heads] of [['wq', 4], ['wk', 2]] as const) {
    const W = model.params.view(model.layout.layers[0][target]) as Float32Array;
    const Wm = merged.params.view(merged.layout.layers[0][target]) as Float32Array;
    const hfBase = permuteRowsForHf(W, heads, hd, 16, true);
    const hfMerged = permuteRowsForHf(Wm, heads, hd, 16, true);
    const A = st.readF32(peftName(0, target, 'A'));
    const B = st.readF32(peftName(0, target, 'B'));
    for (let o = 0; o < heads * hd; o++) for (let i = 0; i < 16; i++) {
      let d = 0;
      for (let k = 0; k < 2; k++) d += 1.5 * B[o * 2 + k] * A[k * 16 + i];
      assert.ok(Math.abs(hfBase[o * 16 + i] + d - hfMerged[o * 16 + i]) < 1e-5, `${target} [${o}, ${i}]`);
    }
  }
  // a PEFT adapter whose tensors do not fit the model is refused in one line naming the file
  const small = makeConfig({ ...c, nLayers: 1 });
  assert.throws(() => readPeftAdapter(dir, small, be), /adapter_model\.safetensors: tensor 'base_model\.model\.model\.layers\.1\..*' is not a LoRA matrix of a layer of this model/);
  writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ ...cfg, target_modules: ['q_proj', 'embed_tokens'] }));
  assert.throws(() => readPeftAdapter(dir, c, be), /adapter_config\.json: target_modules: unknown LoRA target 'embed_tokens'/);
});

// ---------------------------------------------------------------- CLI

test('CLI: bad fine-tuning input gives one line naming the file and line, the flag or the target', () => {
  const dir = tmp();
  const base = join(dir, 'base');
  saveModelAs('ckpt', base, baseModel(), null);
  const bad = sftFile(['{"prompt": "a", "response": "b"}', '{"prompt": "no response"}']);
  const notModel = join(dir, 'notes.txt');
  writeFileSync(notModel, 'hello');
  failsWithOneLine(['train', '--init-from', base, '--sft', bad, '--out', join(dir, 'r1')], /sft\.jsonl:2: missing field "response"/);
  failsWithOneLine(['train', '--init-from', base, '--sft', SFT, '--lora', '4', '--lora-targets', 'wq,wz', '--out', join(dir, 'r2')], /--lora-targets: unknown LoRA target 'wz'/);
  failsWithOneLine(['train', '--init-from', base, '--sft', SFT, '--lora', '0', '--out', join(dir, 'r3')], /--lora expects an integer >= 1, got '0'/);
  failsWithOneLine(['train', '--init-from', base, '--sft', SFT, '--lora=-2', '--out', join(dir, 'r3')], /--lora expects an integer >= 1, got '-2'/);
  failsWithOneLine(['train', '--init-from', notModel, '--out', join(dir, 'r4')], /--init-from: cannot tell the format of '.*notes\.txt'/);
  failsWithOneLine(['train', '--init-from', join(dir, 'missing'), '--out', join(dir, 'r5')], /--init-from '.*missing' does not exist/);
  failsWithOneLine(['train', '--preset', 'mini-260k', '--lora', '2', '--out', join(dir, 'r6')], /--lora trains an adapter over a model: give the model with --init-from MODEL/);
  failsWithOneLine(['train', '--init-from', base, '--sft', SFT, '--data', 'brown', '--out', join(dir, 'r7')], /give --sft FILE\.jsonl or --data PATH, not both/);
  failsWithOneLine(['train', '--init-from', base, '--dim', '64', '--out', join(dir, 'r8')], /--init-from takes the model's own config: drop --dim/);
  failsWithOneLine(['train', '--init-from', base, '--sft', SFT, '--sft-template', 'oops', '--out', join(dir, 'r9')], /--sft-template 'oops' is neither a template name/);
  failsWithOneLine(['generate', '--model', base, '--lora', join(dir, 'nothing'), '--prompt', 'x'], /LoRA adapter '.*nothing' does not exist/);
});

test('CLI: a LoRA run → generate --lora equals the merged model (convert --merge-lora); --to-format peft exports the adapter alone', () => {
  const dir = tmp();
  const base = join(dir, 'base');
  saveModelAs('ckpt', base, baseModel(), null);
  const run = join(dir, 'lora');
  const t = runCli(['train', '--init-from', base, '--sft', SFT, '--lora', '4', '--lora-alpha', '8', '--lora-targets', 'wq,wv,w1', '--out', run, '--steps', '6', '--batch', '4', '--seq', '64', '--lr', '1e-2', '--warmup', '1', '--quiet', '--backend', 'ref']);
  assert.equal(t.code, 0, t.stderr);
  const prompt = 'Question: What is the capital of France?\nAnswer:';
  const gen = (args: string[]) => {
    const r = runCli(['generate', ...args, '--prompt', prompt, '-n', '12', '--temperature', '0', '--json', '--backend', 'ref']);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout).tokens as number[];
  };
  const merged = join(dir, 'merged');
  const c = runCli(['convert', '--from', base, '--merge-lora', run, '--to', merged, '--to-format', 'ckpt']);
  assert.equal(c.code, 0, c.stderr);
  assert.deepEqual(gen(['--model', base, '--lora', run]), gen(['--model', merged]));
  assert.deepEqual(gen(['--lora', run]), gen(['--model', merged])); // the base the adapter records
  // the merged weights differ from the base's exactly in the adapted projections
  const b = loadAnyModel(base, createRefBackend('f32')).model;
  const m = loadAnyModel(merged, createRefBackend('f32')).model;
  for (const spec of b.layout.tensors) {
    const changed = b.params.view(spec).some((x, i) => x !== m.params.view(spec)[i]);
    assert.equal(changed, /attention\.w[qv]\.weight|feed_forward\.w1\.weight/.test(spec.name), spec.name);
  }
  const out = join(dir, 'peft');
  const e = runCli(['convert', '--from', run, '--to', out, '--to-format', 'peft']);
  assert.equal(e.code, 0, e.stderr);
  assert.ok(existsSync(join(out, 'adapter_model.safetensors')) && existsSync(join(out, 'adapter_config.json')) && !existsSync(join(out, 'optimizer.safetensors')));
  assert.deepEqual(gen(['--model', base, '--lora', out]), gen(['--model', merged]));
  failsWithOneLine(['generate', '--model', run, '--prompt', 'x'], /is a LoRA adapter \(rank 4\).*--lora/);
});

test('demonstration (small scale): fine-tuning on the bundled instruction set raises the bundled QA task\'s exact match', async () => {
  const dir = tmp();
  const base = join(dir, 'base');
  const c = makeConfig({ dim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 259, multipleOf: 32, maxSeqLen: 64 });
  const be = nativeAvailable() ? createNativeBackend() : createRefBackend('f32');
  const m0 = new Llama(c, be);
  m0.init(1337);
  saveModelAs('ckpt', base, m0, null);
  const task = loadTask(QA);
  const em = async (path: string) => {
    const { model, tokenizer } = loadAnyModel(path, be);
    return (await runTask(model, tokenizer, task)).metrics.exact_match;
  };
  const before = await em(base);
  const run = join(dir, 'sft');
  const r = runCli(['train', '--init-from', base, '--sft', SFT, '--out', run, '--steps', '300', '--batch', '8', '--seq', '64', '--lr', '3e-3', '--warmup', '20', '--eval-batches', '0', '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  const after = await em(run);
  assert.ok(after > before, `exact match ${before} → ${after}`);
});

test('CLI: --init-from takes any model format (checkpoint, HF, GGUF F32/F16/Q8_0, llama2.c) with its weights, config and tokenizer', () => {
  const dir = tmp();
  const base = join(dir, 'base');
  saveModelAs('ckpt', base, baseModel(), null);
  const m = baseModel();
  const formats: [string, () => void][] = [
    [base, () => {}], [join(dir, 'hf'), () => saveModelAs('hf', join(dir, 'hf'), m, null)], [join(dir, 'm.gguf'), () => saveModelAs('gguf', join(dir, 'm.gguf'), m, null)],
    [join(dir, 'm16.gguf'), () => saveModelAs('gguf', join(dir, 'm16.gguf'), m, null, { ggufType: 'f16' })],
    [join(dir, 'm8.gguf'), () => saveModelAs('gguf', join(dir, 'm8.gguf'), m, null, { ggufType: 'q8_0' })],
    [join(dir, 'l2c', 'm.bin'), () => saveModelAs('llama2c', join(dir, 'l2c', 'm.bin'), m, null)],
  ];
  const first: number[] = [];
  for (const [path, write] of formats) {
    write();
    const run = join(dir, `run-${first.length}`);
    const r = runCli(['train', '--init-from', path, '--sft', SFT, '--out', run, '--steps', '1', '--batch', '2', '--seq', '64', '--eval-batches', '2', '--quiet', '--backend', 'ref']);
    assert.equal(r.code, 0, `${path}: ${r.stderr}`);
    const state = JSON.parse(readFileSync(join(run, 'checkpoints', 'step-00000001', 'state.json'), 'utf8'));
    assert.deepEqual(state.config, config);
    assert.deepEqual(state.tokenizer, { kind: 'bytes' });
    assert.equal(state.finetune.initFrom, path);
    const evals = readFileSync(join(run, 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((x) => 'eval_loss' in x);
    first.push(evals[0].eval_loss);
  }
  // the same weights give the same held-out loss at step 0; F16 and Q8_0 round them a little
  for (const i of [1, 2, 5]) assert.equal(first[i], first[0]);
  for (const i of [3, 4]) assert.ok(Math.abs(first[i] - first[0]) < 1e-2 && first[i] !== first[0], `${formats[i][0]}: ${first[i]} vs ${first[0]}`);
});

test('data parallel SFT from --init-from: DP2 gives the losses of one process with --accum 2 (the masked mean is over both ranks)', { skip: mpiSkip, timeout: 150_000 }, () => {
  const dir = tmp();
  const base = join(dir, 'base');
  saveModelAs('ckpt', base, baseModel(), null);
  const args = (out: string) => ['train', '--init-from', base, '--sft', SFT, '--out', out, '--steps', '3', '--batch', '2', '--seq', '64', '--eval-batches', '0', '--quiet', '--backend', 'ref'];
  const r2 = mpirun(2, [process.execPath, bin, ...args(join(dir, 'dp2'))]);
  assert.equal(r2.status, 0, r2.stderr);
  const r1 = runCli([...args(join(dir, 'dp1')), '--accum', '2']);
  assert.equal(r1.code, 0, r1.stderr);
  const losses = (run: string) => readFileSync(join(dir, run, 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((x) => 'loss' in x).map((x) => x.loss as number);
  const [a, b] = [losses('dp2'), losses('dp1')];
  assert.equal(a.length, 3);
  a.forEach((x, i) => assert.ok(Math.abs(x - b[i]) < 1e-5 * Math.abs(b[i]), `step ${i + 1}: ${x} vs ${b[i]}`));
});
