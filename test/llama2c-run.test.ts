/**
 * Optional cross-check with llama2.c itself: when LLAMA2C_RUN names a compiled run.c binary
 * (gcc -O2 -o run run.c -lm from karpathy/llama2.c), our llama2.c export must produce the same greedy text there.
 * Skipped otherwise (run.c is not vendored here).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeConfig } from '../src/model/config.js';
import { saveModelAs } from '../src/io/formats.js';
import { Decoder, generate } from '../src/inference/generate.js';
import { peakedModel } from './helpers/models.js';

const RUN = process.env.LLAMA2C_RUN;

test('llama2.c run.c generates the same greedy text from our export', { skip: RUN ? false : 'set LLAMA2C_RUN to a compiled llama2.c run binary to enable' }, async () => {
  const config = makeConfig({ dim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 259, multipleOf: 16, maxSeqLen: 64 });
  const model = peakedModel(config, 11);
  const dir = mkdtempSync(join(tmpdir(), 'llama-ts-l2c-'));
  saveModelAs('llama2c', join(dir, 'model.bin'), model, null);
  const n = 40;
  const r = await generate(new Decoder(model), [[1]], { temperature: 0, topK: 0, topP: 1, seed: 1, maxTokens: n, stopTokens: [1] });
  // run.c prints byte pieces that are printable or whitespace, one step per token after BOS
  const bytes = r[0].tokens.filter((t) => t >= 3).map((t) => t - 3).filter((b) => (b >= 0x20 && b < 0x7f) || (b >= 9 && b <= 13));
  const out = spawnSync(RUN as string, [join(dir, 'model.bin'), '-z', join(dir, 'tokenizer.bin'), '-t', '0', '-n', String(n + 1)], { encoding: 'latin1' });
  assert.equal(out.status, 0, out.stderr);
  assert.ok(out.stdout.startsWith(Buffer.from(bytes).toString('latin1')), `run.c: ${JSON.stringify(out.stdout)}`);
});
