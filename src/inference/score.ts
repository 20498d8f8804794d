/** Teacher-forced scoring: the log-probability the model gives each next token of a sequence. */
import { UserError } from '../util/errors.js';
import type { Decoder } from './generate.js';
import { logSoftmax } from './sampler.js';

export interface ScoreResult {
  tokens: number;
  predicted: number;
  mean_loss: number;
  perplexity: number;
  logprobs: number[];
}

export function scoreTokens(dec: Decoder, ids: number[]): ScoreResult {
  const c = dec.config;
  if (ids.length < 2) throw new UserError(`scoring needs at least 2 tokens, got ${ids.length}`);
  if (ids.length > c.maxSeqLen) throw new UserError(`sequence is ${ids.length} tokens; the model's context is ${c.maxSeqLen}`);
  const logits = dec.logitsAll(ids);
  const V = c.vocabSize;
  const logprobs: number[] = [];
  for (let i = 0; i + 1 < ids.length; i++) logprobs.push(logSoftmax(logits.subarray(i * V, (i + 1) * V))[ids[i + 1]]);
  const mean = -logprobs.reduce((a, b) => a + b, 0) / logprobs.length;
  return { tokens: ids.length, predicted: logprobs.length, mean_loss: mean, perplexity: Math.exp(mean), logprobs };
}

export interface ModelQuality {
  mean_loss: number;
  perplexity: number;
}

/** A model scored against a reference on the same tokens (llama.cpp's perplexity --kl-divergence statistics). */
export interface CompareResult {
  tokens: number;
  /** Predicted positions (each window's first token is context only). */
  predicted: number;
  /** Windows of at most the context length the tokens were scored in, each from an empty cache. */
  windows: number;
  model: ModelQuality;
  reference: ModelQuality;
  /** Mean over predicted positions of KL(p_reference ‖ p_model), nats. */
  mean_kl: number;
  /** Largest KL at one position, and the 99th percentile. */
  max_kl: number;
  p99_kl: number;
  /** Fraction of positions where both models' most likely next token is the same. */
  top1_agreement: number;
}

/**
 * Teacher-forced scoring of `model` and `reference` over ids, in consecutive windows of `window` tokens (at most the
 * context): the perplexity of each and the mean KL divergence of the model's next-token distribution from the
 * reference's, Σ_v p_ref(v)·(log p_ref(v) − log p_model(v)), over every predicted position. Each window runs
 * through the decoder `chunk` positions per step: 1 scores the model as it decodes (a quantized one with int8
 * activations), more as it prefills (from QUANT_GEMM_ROWS rows on, float products on its dequantized weights).
 */
export function compareModels(
  model: Decoder, reference: Decoder, ids: number[], window = Math.min(model.config.maxSeqLen, reference.config.maxSeqLen), chunk = 128,
): CompareResult {
  const V = model.config.vocabSize;
  if (reference.config.vocabSize !== V) throw new UserError(`the models' vocabularies differ (${V} and ${reference.config.vocabSize} tokens)`);
  if (ids.length < 2) throw new UserError(`scoring needs at least 2 tokens, got ${ids.length}`);
  if (!(window >= 2)) throw new UserError(`window of ${window} tokens: at least 2 are needed`);
  const kls: number[] = [];
  let lossM = 0, lossR = 0, agree = 0, windows = 0;
  for (let s = 0; s + 1 < ids.length; s += window) {
    const part = ids.slice(s, s + window);
    if (part.length < 2) break;
    windows++;
    const lm = model.logitsAll(part, chunk), lr = reference.logitsAll(part, chunk);
    for (let i = 0; i + 1 < part.length; i++) {
      const pm = logSoftmax(lm.subarray(i * V, (i + 1) * V)), pr = logSoftmax(lr.subarray(i * V, (i + 1) * V));
      let kl = 0, am = 0, ar = 0;
      for (let v = 0; v < V; v++) {
        kl += Math.exp(pr[v]) * (pr[v] - pm[v]);
        if (pm[v] > pm[am]) am = v;
        if (pr[v] > pr[ar]) ar = v;
      }
      kls.push(Math.max(0, kl));
      if (am === ar) agree++;
      lossM -= pm[part[i + 1]];
      lossR -= pr[part[i + 1]];
    }
  }
  const n = kls.length;
  const sorted = kls.slice().sort((a, b) => a - b);
  const q = (mean: number): ModelQuality => ({ mean_loss: mean, perplexity: Math.exp(mean) });
  return {
    tokens: ids.length, predicted: n, windows, model: q(lossM / n), reference: q(lossR / n),
    mean_kl: kls.reduce((a, b) => a + b, 0) / n, max_kl: sorted[n - 1], p99_kl: sorted[Math.min(n - 1, Math.floor(0.99 * n))],
    top1_agreement: agree / n,
  };
}
