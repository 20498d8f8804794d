/**
 * One rank of the tensor-parallel equivalence test (test/distributed.test.ts runs it under `mpirun -np 2`): a model
 * split over the ranks (Llama({ tp })) against the whole model computed in the same process. Checks, per backend:
 * the initial shards are the whole model's, then logits, loss, and every gradient shard agree to 1e-5 relative,
 * and greedy KV-cache decoding gives the same tokens. Prints one JSON line per rank; throws (exit ≠ 0) on a mismatch.
 * Each backend runs with and without sequence parallelism, and with SP under each activation-recompute policy. Outside an MPI launcher it does nothing.
 */
import assert from 'node:assert/strict';
import { createComm, mpiLauncherVar } from '../../src/parallel/mpi.js';
import { Llama } from '../../src/model/llama.js';
import { makeConfig } from '../../src/model/config.js';
import { shardOf } from '../../src/model/params.js';
import { createBackend } from '../../src/kernels/index.js';
import { Decoder, generate } from '../../src/inference/generate.js';
import type { FloatArray } from '../../src/kernels/backend.js';
import { Rng } from '../../src/util/rng.js';

function close(got: ArrayLike<number>, want: ArrayLike<number>, what: string, rel = 1e-5): number {
  assert.equal(got.length, want.length, `${what}: length`);
  let scale = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
  let err = 0;
  for (let i = 0; i < want.length; i++) err = Math.max(err, Math.abs(got[i] - want[i]));
  assert.ok(err <= rel * Math.max(scale, 1e-30), `${what}: max |Δ| ${err} vs max |x| ${scale}`);
  return scale > 0 ? err / scale : 0;
}

if (mpiLauncherVar()) {
  const world = createComm();
  const config = makeConfig({ dim: 32, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 64, multipleOf: 16, maxSeqLen: 24 });
  const report: Record<string, number> = {};
  const variants = [[false, 'none'], [true, 'none'], [true, 'selective'], [true, 'full']] as const;
  for (const [backendName, sp, recompute] of process.argv.slice(2).flatMap((b) => variants.map(([sp, r]) => [b, sp, r] as const))) {
    const be = createBackend(backendName);
    const whole = new Llama(config, be);
    const split = new Llama(config, be, { tp: world, sp, recompute });
    whole.init(11);
    split.init(11);
    const rng = new Rng(3);
    for (const t of whole.layout.tensors) {
      // init: the split model's shard is the whole model's, then weights away from init so every path carries signal
      const shard = be.alloc(split.layout.byName.get(t.name)!.size);
      shardOf(split.layout.byName.get(t.name)!, whole.params.view(t), shard, split.layout.tp);
      assert.deepEqual(Array.from(split.params.get(t.name)), Array.from(shard), `${backendName} init ${t.name}`);
      const v = whole.params.view(t);
      for (let i = 0; i < v.length; i++) v[i] += 0.05 * rng.normal();
    }
    for (const t of split.layout.tensors) shardOf(t, whole.params.get(t.name), split.params.view(t), split.layout.tp);
    const B = 2, T = 12;
    const tokens = Int32Array.from({ length: B * T }, () => rng.int(config.vocabSize));
    const targets = Int32Array.from({ length: B * T }, () => rng.int(config.vocabSize));
    targets[5] = -1;
    const scale = 1 / (B * T);
    let worst = 0;
    const lossOf = (m: Llama) => {
      m.forward(tokens, B, T);
      const logits = m.logits();
      m.ensureGrads().data.fill(0);
      const loss = m.loss(targets, scale);
      m.backward();
      return { logits, loss };
    };
    const a = lossOf(whole);
    const b = lossOf(split);
    worst = Math.max(worst, close(b.logits, a.logits, `${backendName} logits`));
    worst = Math.max(worst, close([b.loss], [a.loss], `${backendName} loss`));
    for (const t of split.layout.tensors) {
      const want: FloatArray = be.alloc(t.size);
      shardOf(t, whole.grads!.get(t.name), want, split.layout.tp);
      worst = Math.max(worst, close(split.grads!.view(t), want, `${backendName} gradient of ${t.name}`));
    }
    const o = { temperature: 0, topK: 0, topP: 1, seed: 1, maxTokens: 10, stopTokens: [] as number[] };
    const g1 = await generate(new Decoder(whole), [[1, 2, 3]], o);
    const g2 = await generate(new Decoder(split), [[1, 2, 3]], o);
    assert.deepEqual(g2[0].tokens, g1[0].tokens, `${backendName} greedy decode`);
    report[`${backendName}${sp ? '+sp' : ''}${recompute !== 'none' ? `+${recompute}` : ''}`] = worst;
  }
  console.log(JSON.stringify({ rank: world.rank, world: world.world, worstRelative: report }));
}
