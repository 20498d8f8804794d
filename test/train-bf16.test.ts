/** Training with --dtype bf16 end to end: exact resume, float32 checkpoints, the CLI flag and its errors. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { train, HYPER_DEFAULTS, type Hyper } from '../src/training/trainer.js';
import { prepareTextData } from '../src/data/text.js';
import { ByteTokenizer } from '../src/tokenizer/bytes.js';
import { createRefBackend } from '../src/kernels/ref.js';
import type { Backend } from '../src/kernels/backend.js';
import { makeConfig } from '../src/model/config.js';
import { openCheckpoint } from '../src/io/checkpoint.js';
import { skip as nativeSkip, native } from './helpers/native.js';
import { runCli, failsWithOneLine } from './helpers/cli.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'llama-ts-bf16-'));

function corpus(): string {
  const path = join(tmp(), 'text.txt');
  const paras: string[] = [];
  for (let i = 0; i < 40; i++) paras.push(`Paragraph ${i}: the quick brown fox jumps over the lazy dog ${i % 7} times, and then it rests.`);
  writeFileSync(path, paras.join('\n\n'));
  return path;
}

const config = makeConfig({ dim: 32, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 259, multipleOf: 16, maxSeqLen: 16 });
const hyper: Hyper = { ...HYPER_DEFAULTS, steps: 6, batch: 2, seq: 16, accum: 2, lr: 5e-3, warmup: 2, evalEvery: 3, evalBatches: 2, ckptEvery: 0, seed: 5, dtype: 16 };

async function run(be: () => Backend, runDir: string, dataPath: string, h: Hyper, extra: { resume?: boolean; stopAt?: number } = {}) {
  const data = prepareTextData(dataPath, new ByteTokenizer(), h.seed, h.seq);
  return train({ config, backend: be(), hyper: h, runDir, train: data.train, heldOut: data.heldOut, tokenizer: { kind: 'bytes' }, quiet: true, ...extra });
}

for (const [name, be, skip] of [['ref', () => createRefBackend('f32'), false], ['native', () => native(), nativeSkip]] as const) {
  test(`bf16 (${name}): N steps + resume + N steps is bit-identical to 2N straight; checkpoints hold float32 master weights`, { skip }, async () => {
    const data = corpus();
    const straight = await run(be, join(tmp(), 'a'), data, hyper);
    assert.equal(straight.model.dtype, 'bf16');
    const dir = join(tmp(), 'b');
    await run(be, dir, data, hyper, { stopAt: 3 });
    const second = await run(be, dir, data, hyper, { resume: true });
    assert.equal(second.model.dtype, 'bf16'); // the checkpoint's dtype
    const a = straight.model.params.data, b = second.model.params.data;
    assert.equal(Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)), 0);
    const ck = openCheckpoint(dir);
    assert.equal(ck.state.hyper.dtype, 16);
    // master weights are float32 values that bf16 cannot hold exactly (not a bf16 copy)
    const w = second.model.params.data;
    let notBf16 = 0;
    const u = new Uint32Array(Float32Array.from(w).buffer);
    for (let i = 0; i < u.length; i++) if (u[i] & 0xffff) notBf16++;
    assert.ok(notBf16 > u.length / 2);
    // the float32 run from the same seed differs, but not by much at this step count
    const f32 = await run(be, join(tmp(), 'c'), data, { ...hyper, dtype: 32 });
    const lb = straight.losses.at(-1)!, lf = f32.losses.at(-1)!;
    assert.notEqual(lb, lf);
    assert.ok(Math.abs(lb - lf) / lf < 0.05, `bf16 loss ${lb} vs f32 ${lf}`);
  });
}

test('CLI: --dtype bf16 trains and logs; a bad --dtype or the ref-f64 backend is one line', () => {
  const dir = tmp();
  const data = corpus();
  const out = join(dir, 'run');
  const common = ['train', '--data', data, '--dim', '32', '--layers', '1', '--heads', '4', '--multiple-of', '16', '--seq', '16', '--batch', '2', '--steps', '2', '--eval-batches', '0', '--out', out, '--quiet'];
  const r = runCli([...common, '--dtype', 'bf16', '--backend', 'ref']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(openCheckpoint(out).state.hyper.dtype, 16);
  failsWithOneLine([...common, '--out', join(dir, 'y'), '--dtype', 'fp8'], /--dtype must be one of f32, bf16, got 'fp8'/);
  failsWithOneLine([...common, '--out', join(dir, 'x'), '--dtype', 'bf16', '--backend', 'ref-f64'], /ref-f64 backend cannot compute in bfloat16/);
});
