/**
 * Batch encoding on worker threads. Texts are cut into chunks of about 256 KB that idle workers
 * pick up; results come back as flat Int32Arrays (transferred, not copied) in input order.
 *
 *   const pool = new EncoderPool(modelBytes, { threads: 4 });
 *   const ids = await pool.encode(docs);   // Int32Array[] (one per doc)
 *   await pool.close();
 */
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { readFileSync } from 'node:fs';
import { UserError } from '../util/errors.js';
import { SentencePieceModel, type EncodeOptions } from './model.js';

export interface PoolOptions extends EncodeOptions {
  /** Worker count (default: available parallelism). */
  threads?: number;
}

interface Job {
  texts: string[];
  start: number;
}

export class EncoderPool {
  private workers: Worker[] = [];
  private nextId = 0;
  readonly threads: number;

  /** `model`: a path to a .model file or its bytes. The model is validated here first. */
  constructor(model: string | Uint8Array, opts: PoolOptions = {}) {
    const bytes = typeof model === 'string' ? (() => { try { return new Uint8Array(readFileSync(model)); } catch (e) { throw new UserError(`cannot read model '${model}': ${(e as Error).message}`); } })() : model;
    SentencePieceModel.fromBytes(bytes); // throws UserError on bad models before any worker starts
    this.threads = Math.max(1, opts.threads ?? availableParallelism());
    for (let i = 0; i < this.threads; i++)
      this.workers.push(new Worker(new URL('./batch-worker.js', import.meta.url), { workerData: { modelBytes: bytes, bos: !!opts.bos, eos: !!opts.eos } }));
  }

  /** Encodes every text; result[i] holds the ids of texts[i]. */
  encode(texts: string[]): Promise<Int32Array[]> {
    const out: Int32Array[] = new Array(texts.length);
    const jobs: Job[] = [];
    let cur: string[] = [];
    let curBytes = 0;
    let start = 0;
    for (let i = 0; i < texts.length; i++) {
      cur.push(texts[i]);
      curBytes += texts[i].length;
      if (curBytes >= 1 << 18) {
        jobs.push({ texts: cur, start });
        start = i + 1;
        cur = [];
        curBytes = 0;
      }
    }
    if (cur.length) jobs.push({ texts: cur, start });
    if (jobs.length === 0) return Promise.resolve(out);
    return new Promise((resolve, reject) => {
      let next = 0;
      let done = 0;
      let failed = false;
      const pending = new Map<number, Job>();
      const cleanups: (() => void)[] = [];
      const finish = (err?: Error) => {
        for (const c of cleanups) c();
        if (err) reject(err);
        else resolve(out);
      };
      const feed = (w: Worker) => {
        if (next >= jobs.length) return;
        const id = this.nextId++;
        pending.set(id, jobs[next]);
        const job = jobs[next++];
        w.postMessage({ id, text: job.texts.join(''), lens: Int32Array.from(job.texts, (t) => t.length) });
      };
      for (const w of this.workers) {
        const onMsg = (m: { id: number; ids: Int32Array; offsets: Int32Array }) => {
          const job = pending.get(m.id);
          if (!job || failed) return;
          pending.delete(m.id);
          for (let k = 0; k < job.texts.length; k++) out[job.start + k] = m.ids.subarray(m.offsets[k], m.offsets[k + 1]);
          if (++done === jobs.length) finish();
          else feed(w);
        };
        const onErr = (e: Error) => {
          if (failed) return;
          failed = true;
          finish(e);
        };
        w.on('message', onMsg);
        w.on('error', onErr);
        cleanups.push(() => {
          w.off('message', onMsg);
          w.off('error', onErr);
        });
        feed(w);
      }
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers = [];
  }
}

/** One-shot convenience: encodes texts on `threads` workers and shuts them down. */
export async function encodeBatch(model: string | Uint8Array, texts: string[], opts: PoolOptions = {}): Promise<Int32Array[]> {
  const pool = new EncoderPool(model, opts);
  try {
    return await pool.encode(texts);
  } finally {
    await pool.close();
  }
}
