/**
 * A training run without Node: what the page's worker (train-worker.ts) drives, on the Node-free parts of the
 * library — the model, a Backend (the wasm one in a page), the byte tokenizer, the text data pipeline of
 * `llama-ts train --data FILE` (data/documents.ts), the training step (training/step.ts) and AdamW, generation and
 * scoring (inference/), single-file checkpoints (io/bundle.ts), and GGUF files (io/gguf-read.ts, io/gguf-model.ts: the
 * CLI's reader, on bytes). The same text and settings give the same batches and the same state as `llama-ts train`,
 * so a run moves between Node and a page through a checkpoint and continues exactly (same weights, moments, step and
 * data position). A model whose tokenizer is not the byte tokenizer (a GGUF file's SentencePiece vocabulary) is
 * loaded to sample only: the page's data pipeline and checkpoints are byte-level.
 */
import type { Backend } from '../kernels/backend.js';
import { Llama } from '../model/llama.js';
import { makeConfig, validateConfig, type LlamaConfig } from '../model/config.js';
import { ByteTokenizer } from '../tokenizer/bytes.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { tokenizerFromVocab } from '../tokenizer/vocab.js';
import { documentsFromText, textDataFromDocuments, type TextData } from '../data/documents.js';
import { trainStep, type StepState } from '../training/step.js';
import { AdamW } from '../training/optimizer.js';
import { checkHyper, hyperFromSaved, resolveHyper, type Hyper } from '../training/settings.js';
import { LOCAL_COMM } from '../parallel/comm.js';
import { Decoder, generate } from '../inference/generate.js';
import { scoreTokens } from '../inference/score.js';
import type { CheckpointState } from '../io/checkpoint.js';
import type { StepRecord } from '../training/metrics.js';
import { CHECKPOINT_FORMAT, decodeSafetensors, encodeCheckpointBundle, openBundle, type OpenedBundle } from '../io/bundle.js';
import { ggufFromBytes } from '../io/gguf-read.js';
import { llamaGgufSource } from '../io/gguf-model.js';
import { fillModel } from '../io/model-common.js';
import { UserError } from '../util/errors.js';

/** The page's default model: the demo's shape (llama-ts demo), small enough to learn spelling in minutes. */
export const PAGE_MODEL: Partial<LlamaConfig> = { dim: 128, nLayers: 4, nHeads: 4, nKvHeads: 2, multipleOf: 32, maxSeqLen: 128 };

/** One step, as train.jsonl records it (no MFU in a page: 0). */
export type StepReport = StepRecord;

/** Text as training data: a readable UserError for a binary file or one without enough text. */
export function textData(text: string, name: string, seed: number, seq: number): TextData {
  // a binary file decodes with replacement characters or NULs: refuse it rather than train on noise
  const sample = text.slice(0, 65536);
  let odd = 0;
  for (let i = 0; i < sample.length; i++) {
    const c = sample.charCodeAt(i);
    if (c === 0xfffd || c === 0 || (c < 32 && c !== 9 && c !== 10 && c !== 13 && c !== 12)) odd++;
  }
  if (sample.length > 0 && odd / sample.length > 0.01) throw new UserError(`'${name}' looks like a binary file, not text (${odd} unreadable characters in its first ${sample.length})`);
  if (text.trim() === '') throw new UserError(`'${name}' is empty: drop a text file with at least a few hundred characters`);
  return textDataFromDocuments(documentsFromText(text, `'${name}'`), `'${name}'`, new ByteTokenizer(), seed, seq);
}

export class TrainingSession {
  readonly model: Llama;
  readonly opt: AdamW;
  private readonly state: StepState | null;
  private data: TextData | null;
  private lastLoss: number | null = null;

  /**
   * `data` null: a model to sample from only, `cannotTrain` says why (another tokenizer than the byte tokenizer, or
   * no training text).
   */
  private constructor(
    readonly backend: Backend, readonly config: LlamaConfig, readonly hyper: Hyper, data: TextData | null, readonly dataName: string,
    readonly tokenizer: Tokenizer = new ByteTokenizer(), readonly cannotTrain: string | null = null,
  ) {
    this.model = new Llama(config, backend);
    this.opt = new AdamW(this.model.layout, backend, { beta1: hyper.beta1, beta2: hyper.beta2, eps: hyper.eps, weightDecay: hyper.weightDecay });
    this.data = data;
    const schedule = { peakLr: hyper.lr, warmupSteps: hyper.warmup, totalSteps: hyper.steps, minRatio: hyper.minLrRatio };
    if (data) this.model.ensureGrads();
    this.state = data ? { model: this.model, opt: this.opt, data: data.train, hyper, schedule, dp: LOCAL_COMM } : null;
  }

  /** Whether this session trains (the byte tokenizer and training text), or only samples. */
  get trainable(): boolean {
    return this.state !== null;
  }

  private need(): { state: StepState; data: TextData } {
    if (!this.state || !this.data) throw new UserError(this.cannotTrain ?? 'this model samples only');
    return { state: this.state, data: this.data };
  }

  /** A new run: the model initialised from the seed, settings as `llama-ts train` resolves them for this model. */
  static fresh(backend: Backend, text: string, dataName: string, config: Partial<LlamaConfig> = PAGE_MODEL, given: Partial<Hyper> = {}): TrainingSession {
    const c = makeConfig({ ...config, vocabSize: new ByteTokenizer().vocabSize });
    validateConfig(c);
    const hyper = resolveHyper(given, c);
    checkHyper(hyper, c);
    const s = new TrainingSession(backend, c, hyper, textData(text, dataName, hyper.seed, hyper.seq), dataName);
    s.model.init(hyper.seed);
    return s;
  }

  /**
   * A run continued from a checkpoint (a single-file bundle, or a checkpoint directory's state.json and
   * safetensors): its config, settings, weights, moments, step and data position. `text` must be the data it was
   * trained on (the data position checks the length). Without moments (a model-only checkpoint) it starts a new
   * schedule from the checkpoint's weights.
   */
  static resume(backend: Backend, ck: OpenedBundle, text: string, dataName: string, steps?: number): TrainingSession {
    if (ck.state.tokenizer?.kind !== 'bytes') throw new UserError(`this checkpoint uses a ${ck.state.tokenizer?.kind} tokenizer; the page trains with the byte tokenizer only`);
    const c = ck.state.config;
    if (c.vocabSize < 259) throw new UserError(`this checkpoint's vocabulary (${c.vocabSize}) is smaller than the byte tokenizer's 259 ids`);
    const saved = Object.keys(ck.state.hyper ?? {}).length ? hyperFromSaved(ck.state.hyper) : resolveHyper({}, c);
    const hyper = { ...saved, steps: Math.max(steps ?? saved.steps, ck.state.step) };
    checkHyper(hyper, c);
    const s = new TrainingSession(backend, c, hyper, textData(text, dataName, hyper.seed, hyper.seq), dataName);
    if (ck.hasMoments && ck.state.data) {
      ck.loadInto(s.model.params, { m: s.opt.m, v: s.opt.v });
      s.opt.step = ck.state.step;
      s.need().data.train.restore(ck.state.data);
    } else ck.loadInto(s.model.params);
    s.lastLoss = ck.state.lastLoss ?? null;
    return s;
  }

  /**
   * A model from a GGUF file's bytes (as `llama-ts convert --to gguf` writes them; F32, F16, BF16 and the quantized
   * types io reads, dequantized to float32): with the byte tokenizer's vocabulary and training text it trains on
   * from its weights (a new schedule, the page's settings); with another vocabulary (SentencePiece-style) it samples
   * with that vocabulary's tokenizer only. A GGUF without a vocabulary llama-ts reads is refused with a UserError.
   */
  static fromGguf(backend: Backend, bytes: Uint8Array, name: string, text: { text: string; name: string } | null, given: Partial<Hyper> = {}): TrainingSession {
    const file = ggufFromBytes(bytes, name);
    const src = llamaGgufSource(file);
    const c = src.config;
    if (!src.vocab) {
      const kind = file.metadata.get('tokenizer.ggml.model');
      const has = typeof kind === 'string' ? `a '${kind}' tokenizer, which llama-ts does not read` : 'no tokenizer';
      throw new UserError(`'${name}' has ${has} (the page reads SentencePiece-style 'llama' vocabularies and the byte tokenizer's): it cannot sample text from it or train it; the CLI scores it from token ids (llama-ts score --ids)`);
    }
    const tokenizer = tokenizerFromVocab(src.vocab);
    const bytesTok = tokenizer instanceof ByteTokenizer;
    const hyper = resolveHyper(given, c);
    checkHyper(hyper, c);
    const why = !bytesTok
      ? `'${name}' has a ${src.vocab.pieces.length}-piece SentencePiece-style vocabulary; the page trains with the byte tokenizer only: it samples from this model (drop a text file to start a new run)`
      : !text ? 'load the training text first (it was missing when the model was loaded)' : null;
    const data = why === null && text ? textData(text.text, text.name, hyper.seed, hyper.seq) : null;
    const s = new TrainingSession(backend, c, hyper, data, text?.name ?? '', tokenizer, why);
    fillModel(s.model, src, { dequantize: true });
    return s;
  }

  /** Opens checkpoint bytes: a bundle (.safetensors with the state), or a directory's files by name. */
  static open(files: Map<string, Uint8Array>): OpenedBundle {
    const names = [...files.keys()];
    const state = files.get('state.json');
    if (state) {
      const model = files.get('model.safetensors');
      if (!model) throw new UserError('a checkpoint directory needs model.safetensors beside state.json');
      let json: unknown;
      try {
        json = JSON.parse(new TextDecoder().decode(state));
      } catch {
        throw new UserError('state.json is not JSON');
      }
      const opt = files.get('optimizer.safetensors');
      return openBundle(decodeSafetensors(model, "'model.safetensors'"), 'the checkpoint', json, opt ? decodeSafetensors(opt, "'optimizer.safetensors'") : undefined);
    }
    if (names.length !== 1) throw new UserError(`drop one checkpoint file (.safetensors), or a checkpoint's state.json with its model.safetensors (got ${names.join(', ')})`);
    const [name] = names;
    return openBundle(decodeSafetensors(files.get(name)!, `'${name}'`), `'${name}'`);
  }

  /** Steps done so far. */
  get step(): number {
    return this.opt.step;
  }

  trainTokens(): number {
    return this.data?.trainTokens ?? 0;
  }

  /** One optimizer step (training/step.ts, as `llama-ts train` runs it). */
  trainOne(): StepReport {
    const r = trainStep(this.need().state, this.opt.step);
    this.lastLoss = r.loss;
    const tokens = this.hyper.batch * this.hyper.seq * this.hyper.accum;
    return { step: this.opt.step, loss: r.loss, lr: r.lr, grad_norm: r.norm, tokens_per_s: (tokens * 1000) / r.ms.total, mfu: 0, ms: r.ms };
  }

  /**
   * A sample continuing `prompt` (BOS first), as `--sample-every` draws them (temperature 0.8, top-p 0.95);
   * temperature 0 is greedy, as `llama-ts generate --temperature 0` decodes.
   */
  async sample(prompt: string, maxTokens: number, seed: number, temperature = 0.8): Promise<{ text: string; tokens: number[] }> {
    const ids = [this.tokenizer.bosId, ...this.tokenizer.encode(prompt)].slice(0, this.config.maxSeqLen - 1);
    const n = Math.min(maxTokens, this.config.maxSeqLen - ids.length);
    const [r] = await generate(new Decoder(this.model), [ids], { maxTokens: n, temperature, topK: 0, topP: 0.95, seed, tokenizer: this.tokenizer, stopTokens: [this.tokenizer.eosId], onContextFull: 'stop' });
    return { text: r.text, tokens: r.tokens };
  }

  /** Teacher-forced mean loss of a sequence (as `llama-ts score --ids`). */
  score(ids: number[]): number {
    return scoreTokens(new Decoder(this.model), ids).mean_loss;
  }

  /** A window of held-out tokens to score: the first `n` of the held-out stream (BOS first). */
  heldOutIds(n: number): number[] {
    const b = this.need().data.heldOut().next(1, Math.min(n, this.config.maxSeqLen) - 1);
    return [b.tokens[0], ...Array.from(b.targets)];
  }

  /** The run as one file (io/bundle.ts): `llama-ts generate --model FILE` reads it; `train --resume` continues it. */
  save(): Uint8Array {
    const { data } = this.need();
    const state: CheckpointState = {
      format: CHECKPOINT_FORMAT, version: 1, step: this.opt.step, config: this.config, hyper: { ...this.hyper },
      data: data.train.state(), tokenizer: { kind: 'bytes' }, lastLoss: this.lastLoss, savedAt: new Date().toISOString(),
    };
    return encodeCheckpointBundle(state, this.model.params, { m: this.opt.m, v: this.opt.v });
  }
}
