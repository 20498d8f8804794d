/** Messages between the page (page.ts) and its training worker (train-worker.ts). */
import type { StepReport } from './session.js';

export type ToWorker =
  /** `preset`/`hyper`: the model and settings of new runs (default: the demo's model, train's settings). */
  | { type: 'init'; threads?: number; preset?: string; hyper?: Record<string, number> }
  /** Training text: the bundled slice or a dropped file's bytes (decoded and checked in the worker). */
  | { type: 'data'; name: string; bytes: ArrayBuffer }
  | { type: 'train' }
  | { type: 'pause' }
  | { type: 'save' }
  /** A checkpoint: one bundle file, or a checkpoint directory's files (state.json, model.safetensors, …). */
  | { type: 'load'; files: { name: string; bytes: ArrayBuffer }[] }
  /** A GGUF file (as `llama-ts convert --to gguf` writes it): to sample from, and to train on from its weights. */
  | { type: 'gguf'; name: string; bytes: ArrayBuffer }
  /** A sample of the current model continuing `prompt` (temperature 0: greedy, as `llama-ts generate --temperature 0`). */
  | { type: 'generate'; prompt: string; temperature: number; maxTokens: number };

export type FromWorker =
  | { type: 'ready'; simd: string; threads: number; isolated: boolean }
  | { type: 'data'; name: string; tokens: number }
  /** `from`: the file a loaded model came from; `samplesOnly`: why it cannot be trained (null when it can). */
  | { type: 'run'; step: number; params: number; config: string; batchTokens: number; resumed: boolean; from?: string; samplesOnly?: string | null }
  | { type: 'step'; report: StepReport }
  | { type: 'sample'; step: number; text: string }
  | { type: 'paused'; step: number }
  /** The answer to 'generate': the prompt, the continuation and its token ids. */
  | { type: 'generated'; prompt: string; text: string; tokens: number[] }
  /** The run as a single-file checkpoint, and the teacher-forced loss of `ids` under it (what `llama-ts score` prints). */
  | { type: 'checkpoint'; name: string; bytes: ArrayBuffer; step: number; ids: number[]; score: number }
  | { type: 'error'; message: string };
