/** Worker thread for EncoderPool: loads the model from bytes, encodes batches of texts. */
import { parentPort, workerData } from 'node:worker_threads';
import { SentencePieceModel } from './model.js';

const { modelBytes, bos, eos } = workerData as { modelBytes: Uint8Array; bos: boolean; eos: boolean };
const model = SentencePieceModel.fromBytes(modelBytes);

parentPort!.on('message', (msg: { id: number; texts: string[] }) => {
  const offsets = new Int32Array(msg.texts.length + 1);
  const all: number[] = [];
  for (let i = 0; i < msg.texts.length; i++) {
    for (const t of model.encode(msg.texts[i], { bos, eos })) all.push(t);
    offsets[i + 1] = all.length;
  }
  const ids = Int32Array.from(all);
  parentPort!.postMessage({ id: msg.id, ids, offsets }, [ids.buffer, offsets.buffer]);
});
