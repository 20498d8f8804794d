/**
 * The page's training worker: owns the wasm backend and the TrainingSession, trains while asked to, reports every
 * step, draws a sample every few steps, answers save/load with single-file checkpoints, loads GGUF files, and samples
 * on request. The page's main thread only draws. Errors go back as one readable line; the worker stays usable after
 * one.
 */
import { createPageWasmBackend } from './wasm-host.js';
import { PAGE_MODEL, TrainingSession, textData } from './session.js';
import type { FromWorker, ToWorker } from './protocol.js';
import type { WasmBackend } from '../kernels/wasm.js';
import { paramCount, describeConfig, getPreset, type LlamaConfig } from '../model/config.js';
import type { Hyper } from '../training/settings.js';
import { UserError } from '../util/errors.js';

const post = (m: FromWorker, transfer: Transferable[] = []): void => (self as unknown as Worker).postMessage(m, transfer);

let backend: WasmBackend | null = null;
let session: TrainingSession | null = null;
let text: { name: string; text: string } | null = null;
let running = false;
let model: Partial<LlamaConfig> = PAGE_MODEL;
let hyper: Partial<Hyper> = {};
const SAMPLE_EVERY = 20;
const SAMPLE_PROMPT = 'The ';

function say(e: unknown): void {
  const message = e instanceof UserError || e instanceof RangeError ? e.message : `unexpected error: ${(e as Error)?.message ?? String(e)}`;
  post({ type: 'error', message });
}

function announce(s: TrainingSession, resumed: boolean, from?: string): void {
  post({ type: 'run', step: s.step, params: paramCount(s.config), config: describeConfig(s.config), batchTokens: s.hyper.batch * s.hyper.seq * s.hyper.accum, resumed, from, samplesOnly: s.cannotTrain });
}

async function loop(): Promise<void> {
  while (running && session) {
    const report = session.trainOne();
    post({ type: 'step', report });
    if (report.step % SAMPLE_EVERY === 0) post({ type: 'sample', step: report.step, text: (await session.sample(SAMPLE_PROMPT, 80, report.step)).text });
    await new Promise((r) => setTimeout(r, 0)); // let pause/save messages in
  }
}

async function handle(m: ToWorker): Promise<void> {
  switch (m.type) {
    case 'init':
      if (m.preset) model = getPreset(m.preset);
      hyper = (m.hyper ?? {}) as Partial<Hyper>;
      backend = await createPageWasmBackend(new URL('./', import.meta.url), m.threads);
      post({ type: 'ready', simd: backend.simd(), threads: backend.threads(), isolated: (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true });
      return;
    case 'data': {
      const bytes = new Uint8Array(m.bytes);
      if (bytes.length === 0) throw new UserError(`'${m.name}' is empty: drop a text file with at least a few hundred characters`);
      const t = new TextDecoder('utf-8').decode(bytes);
      // check it now (binary, too small) so that a bad file is refused before it replaces the current text
      textData(t, m.name, 1, hyper.seq ?? Math.min(256, model.maxSeqLen ?? 256));
      running = false;
      text = { name: m.name, text: t };
      session = null;
      post({ type: 'data', name: m.name, tokens: bytes.length });
      return;
    }
    case 'train':
      if (session && !session.trainable) throw new UserError(session.cannotTrain ?? 'this model samples only');
      if (!text) throw new UserError('no training text yet');
      session ??= TrainingSession.fresh(backend!, text.text, text.name, model, hyper);
      if (session.step === 0 && !running) announce(session, false);
      if (!running) {
        running = true;
        void loop().catch((e) => {
          running = false;
          say(e);
        });
      }
      return;
    case 'pause':
      running = false;
      post({ type: 'paused', step: session?.step ?? 0 });
      return;
    case 'save': {
      if (!session) throw new UserError('nothing to save yet: train first, or load a checkpoint');
      const bytes = session.save();
      const ids = session.heldOutIds(64);
      const score = session.score(ids);
      const buf = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
      post({ type: 'checkpoint', name: `llama-ts-step-${session.step}.safetensors`, bytes: buf, step: session.step, ids, score }, [buf]);
      return;
    }
    case 'load': {
      if (!text) throw new UserError('load the training text first');
      const files = new Map(m.files.map((f) => [f.name.split('/').pop()!, new Uint8Array(f.bytes)]));
      const ck = TrainingSession.open(files);
      const next = TrainingSession.resume(backend!, ck, text.text, text.name);
      running = false;
      session = next;
      announce(session, true);
      post({ type: 'sample', step: session.step, text: (await session.sample(SAMPLE_PROMPT, 80, session.step)).text });
      return;
    }
    case 'gguf': {
      const next = TrainingSession.fromGguf(backend!, new Uint8Array(m.bytes), m.name, text, hyper);
      running = false;
      session = next;
      announce(session, false, m.name);
      post({ type: 'sample', step: session.step, text: (await session.sample(SAMPLE_PROMPT, 80, session.step)).text });
      return;
    }
    case 'generate': {
      if (!session) throw new UserError('no model yet: train one, or load a checkpoint or a GGUF file');
      const r = await session.sample(m.prompt, m.maxTokens, 1, m.temperature);
      post({ type: 'generated', prompt: m.prompt, text: r.text, tokens: r.tokens });
      return;
    }
  }
}

// one message at a time, in order; an error is reported and the worker goes on
let queue: Promise<void> = Promise.resolve();
self.onmessage = (e: MessageEvent<ToWorker>) => {
  queue = queue.then(() => handle(e.data)).catch(say);
};
