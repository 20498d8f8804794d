/** Worker thread for EncoderPool: loads the model from bytes, encodes batches of texts. */
import { parentPort, workerData } from 'node:worker_threads';
import { SentencePieceModel } from './model.js';

const { modelBytes, bos, eos } = workerData as { modelBytes: Uint8Array; bos: boolean; eos: boolean };
const model = SentencePieceModel.fromBytes(modelBytes);

/** A job: the texts concatenated, with their lengths (one string clones much faster than many). */
parentPort!.on('message', (msg: { id: number; text: string; lens: Int32Array }) => {
  const n = msg.lens.length;
  const offsets = new Int32Array(n + 1);
  let ids = new Int32Array(Math.max(1024, msg.text.length >> 1));
  let len = 0;
  let pos = 0;
  for (let i = 0; i < n; i++) {
    const t = msg.text.slice(pos, pos + msg.lens[i]);
    pos += msg.lens[i];
    const r = model.encode(t, { bos, eos });
    if (len + r.length > ids.length) {
      const g = new Int32Array(Math.max(ids.length * 2, len + r.length));
      g.set(ids.subarray(0, len));
      ids = g;
    }
    for (let k = 0; k < r.length; k++) ids[len++] = r[k];
    offsets[i + 1] = len;
  }
  const out = ids.slice(0, len);
  parentPort!.postMessage({ id: msg.id, ids: out, offsets }, [out.buffer, offsets.buffer]);
});
