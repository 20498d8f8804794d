/** Worker thread for `data prepare`: encodes batches of documents into BOS … EOS token runs. */
import { parentPort, workerData } from 'node:worker_threads';
import { loadTokenizer } from './tokenizer.js';
import { encodeDocs } from './prepare.js';

const tok = await loadTokenizer((workerData as { tokenizer: string | null }).tokenizer);
parentPort!.on('message', (m: { id: number; docs: string[] }) => {
  try {
    const r = encodeDocs(m.docs, tok);
    parentPort!.postMessage({ id: m.id, tokens: r.tokens, lengths: r.lengths }, [r.tokens.buffer as ArrayBuffer, r.lengths.buffer as ArrayBuffer]);
  } catch (e) {
    parentPort!.postMessage({ id: m.id, error: (e as Error).message });
  }
});
parentPort!.postMessage({ ready: true });
