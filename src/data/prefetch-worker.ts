/**
 * Prefetch worker for MixtureSource: runs the sampler from the state it was given and fills the shared ring of
 * slots in order, blocking while the next slot is still full. See loader.ts for the slot layout.
 */
import { workerData, type MessagePort } from 'node:worker_threads';
import { MixtureSampler, type MixtureSpec } from './loader.js';
import { UserError } from '../util/errors.js';
import type { RngState } from '../util/rng.js';

const d = workerData as { spec: MixtureSpec; sab: SharedArrayBuffer; slots: number; slotInts: number; batch: number; seq: number; rng: RngState; drawn: number; port: MessagePort };
const view = new Int32Array(d.sab);
const HEAD = 8;
let slot = 0;
let sampler: MixtureSampler | null = null;
try {
  sampler = new MixtureSampler(d.spec, { rng: d.rng, drawn: d.drawn });
  for (;;) {
    const base = slot * d.slotInts;
    // wait for the consumer to empty this slot; wait on the value just read (reading it again for the wait would
    // miss an empty-and-notify that lands between the two reads, and then sleep forever)
    for (let v = Atomics.load(view, base); v !== 0; v = Atomics.load(view, base)) Atomics.wait(view, base, v);
    sampler.fill(d.batch, d.seq, view.subarray(base + HEAD, base + d.slotInts));
    const st = sampler.rng.state();
    view[base + 1] = sampler.drawn;
    for (let i = 0; i < 4; i++) view[base + 2 + i] = st[i] | 0;
    Atomics.store(view, base, 1);
    Atomics.notify(view, base);
    slot = (slot + 1) % d.slots;
  }
} catch (e) {
  d.port.postMessage({ error: (e as Error).message, user: e instanceof UserError });
  const base = slot * d.slotInts;
  Atomics.store(view, base, 2);
  Atomics.notify(view, base);
}
