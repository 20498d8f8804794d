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
