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
  | { type: 'load'; files: { name: string; bytes: ArrayBuffer }[] };

export type FromWorker =
  | { type: 'ready'; simd: string; threads: number; isolated: boolean }
  | { type: 'data'; name: string; tokens: number }
  | { type: 'run'; step: number; params: number; config: string; batchTokens: number; resumed: boolean }
  | { type: 'step'; report: StepReport }
  | { type: 'sample'; step: number; text: string }
  | { type: 'paused'; step: number }
  /** The run as a single-file checkpoint, and the teacher-forced loss of `ids` under it (what `llama-ts score` prints). */
  | { type: 'checkpoint'; name: string; bytes: ArrayBuffer; step: number; ids: number[]; score: number }
  | { type: 'error'; message: string };
