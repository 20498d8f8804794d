/** The trainer's Comm seam: what it reduces, and that the world size is in the gradient scale. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { train, HYPER_DEFAULTS, type Hyper, type TrainOptions } from '../src/training/trainer.js';
import { LocalComm, type Comm, type CommRequest } from '../src/parallel/comm.js';
import type { FloatArray } from '../src/kernels/backend.js';
import { prepareTextData } from '../src/data/text.js';
import { RankSlice } from '../src/data/source.js';
import { ByteTokenizer } from '../src/tokenizer/bytes.js';
import { paragraphCorpus } from './helpers/data.js';
import { createRefBackend } from '../src/kernels/ref.js';
import { makeConfig, paramCount } from '../src/model/config.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'llama-ts-test-'));
const config = makeConfig({ dim: 16, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 259, multipleOf: 8, maxSeqLen: 16 });
const hyper: Hyper = { ...HYPER_DEFAULTS, steps: 4, batch: 2, seq: 16, accum: 2, lr: 5e-3, warmup: 1, evalEvery: 0, evalBatches: 1, ckptEvery: 0, seed: 5 };

const corpus = paragraphCorpus;

function run(path: string, extra: Partial<TrainOptions> = {}) {
  const data = prepareTextData(path, new ByteTokenizer(), hyper.seed, hyper.seq);
  return train({ config, backend: createRefBackend('f32'), hyper, runDir: join(tmp(), 'run'), train: data.train, heldOut: data.heldOut, tokenizer: { kind: 'bytes' }, quiet: true, ...extra });
}

/** Records the all-reduces; `twins` ranks that all hold the same data (the sum is the buffer times `twins`). */
class TwinComm implements Comm {
  readonly rank = 0;
  readonly calls: number[] = [];
  private readonly local = new LocalComm();
  constructor(readonly world: number) {}
  allReduce(buf: FloatArray): void {
    this.calls.push(buf.length);
    for (let i = 0; i < buf.length; i++) buf[i] *= this.world;
  }
  reduceScatter(send: FloatArray, recv: FloatArray): void { this.local.reduceScatter(send, recv); }
  allGather(send: FloatArray, recv: FloatArray): void { for (let r = 0; r < this.world; r++) recv.set(send, r * send.length); }
  broadcast(buf: FloatArray, root: number): void { this.local.broadcast(buf, root); }
  barrier(): void {}
  iallReduce(buf: FloatArray): CommRequest { this.allReduce(buf); return { wait() {}, test: () => true }; }
  ireduceScatter(send: FloatArray, recv: FloatArray): CommRequest { return this.local.ireduceScatter(send, recv); }
  iallGather(send: FloatArray, recv: FloatArray): CommRequest { return this.local.iallGather(send, recv); }
  ibroadcast(buf: FloatArray, root: number): CommRequest { return this.local.ibroadcast(buf, root); }
  split(): Comm { return this; }
}

const bytes = (a: FloatArray) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

test('each step all-reduces the flat gradient buffer and the loss sum once', async () => {
  const comm = new TwinComm(1);
  const path = corpus();
  const withComm = await run(path, { comm });
  assert.deepEqual(comm.calls, Array.from({ length: hyper.steps }, () => [paramCount(config), 1]).flat());
  const plain = await run(path);
  assert.deepEqual(withComm.losses, plain.losses);
  assert.equal(Buffer.compare(bytes(withComm.model.params.data), bytes(plain.model.params.data)), 0);
});

test('the world size is in the gradient scale: two ranks with the same data train exactly as one on that data', async () => {
  const path = corpus();
  // rank 0 of 2 takes every other batch (RankSlice); its twin's gradients are the same, so the sum is twice its own
  const twins = await run(path, { comm: new TwinComm(2) });
  const data = prepareTextData(path, new ByteTokenizer(), hyper.seed, hyper.seq);
  const one = await run(path, { train: new RankSlice(data.train, 0, 2) });
  assert.deepEqual(twins.losses, one.losses);
  assert.equal(Buffer.compare(bytes(twins.model.params.data), bytes(one.model.params.data)), 0);
});
