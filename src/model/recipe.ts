/**
 * Each preset's training recipe: what `train --preset NAME` uses unless a flag says otherwise, what `info --preset`
 * prints beside the shapes, and the batch and token budget `plan cluster --preset` assumes.
 *
 * The paper's presets carry Table 2 of Touvron et al. 2023: AdamW β1 0.9, β2 0.95, weight decay 0.1, gradient
 * clipping 1.0, 2,000 warmup steps, cosine decay to 10% of the peak, a batch of 4M tokens (4 × 2^20 = 4,194,304:
 * 2,048 sequences of 2,048), peak learning rate 3.0e-4 for 7B/13B and 1.5e-4 for 33B/65B, 1.0T training tokens for
 * 7B/13B and 1.4T for 33B/65B, context 2,048.
 *
 * The small presets' recipes are our own, for training on a CPU: peak learning rates from the sweep in
 * bench/lr-sweep.ts (results in bench/results/lr-sweep-2core-epyc.json; see docs/TRAINING.md): mini-260k 1e-2 swept,
 * mini-15m 1e-3 and mini-42m 5e-4 extrapolated from it; batches of 8 sequences of 256, warmup 100 steps and
 * 1,000 steps' worth of tokens (the generic defaults' run length).
 */

export interface Recipe {
  /** Peak learning rate (end of warmup). */
  lr: number;
  /** Linear warmup steps. */
  warmup: number;
  /** Final learning rate of the cosine decay as a fraction of the peak. */
  minLrRatio: number;
  /** Global batch in tokens: micro-batch × seq × accumulation × data-parallel ranks. */
  batchTokens: number;
  /** Sequences per micro-batch the recipe starts from (the accumulation makes up the rest of the global batch). */
  microBatch: number;
  /** Training tokens in all (the step count follows from it and the batch). */
  tokens: number;
  /** Context (tokens per sequence). */
  seq: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Global gradient-norm clipping threshold. */
  clip: number;
  /** Where the numbers come from. */
  source: string;
}

const TABLE2 = 'Touvron et al. 2023, Table 2 and section 2.2';
const paper = (lr: number, tokens: number): Recipe => ({
  lr, warmup: 2000, minLrRatio: 0.1, batchTokens: 4 * 2 ** 20, microBatch: 1, tokens, seq: 2048,
  beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, clip: 1.0, source: TABLE2,
});
const SWEEP = 'peak lr from bench/lr-sweep.ts: bench/results/lr-sweep-2core-epyc.json, docs/TRAINING.md';
const EXTRAPOLATED = 'peak lr extrapolated from bench/lr-sweep.ts (not swept at this size)';
const small = (lr: number, seq: number, source = SWEEP): Recipe => ({
  lr, warmup: 100, minLrRatio: 0.1, batchTokens: 8 * seq, microBatch: 8, tokens: 1000 * 8 * seq, seq,
  beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, clip: 1.0, source,
});

export const RECIPES: Readonly<Record<string, Recipe>> = {
  'llama-7b': paper(3.0e-4, 1.0e12),
  'llama-13b': paper(3.0e-4, 1.0e12),
  'llama-33b': paper(1.5e-4, 1.4e12),
  'llama-65b': paper(1.5e-4, 1.4e12),
  'mini-260k': small(1e-2, 256),
  'mini-15m': small(1e-3, 256, `${EXTRAPOLATED}: the optimum fell ~3× from dim 64 (mini-260k, 1e-2) to dim 128 (demo, 3e-3)`),
  'mini-42m': small(5e-4, 256, `${EXTRAPOLATED}: the same trend at dim 512, and llama2.c's lr for its 42M model`),
};

/** The preset's recipe, or undefined for a name without one. */
export function getRecipe(preset: string): Recipe | undefined {
  const r = RECIPES[preset];
  return r ? { ...r } : undefined;
}

/** '1.0T', '1.4T', '2.0M': two significant digits. */
export function humanCount(n: number): string {
  for (const [s, v] of [['T', 1e12], ['B', 1e9], ['M', 1e6], ['k', 1e3]] as const) if (n >= v) return `${(n / v).toPrecision(2)}${s}`;
  return String(n);
}

/** One line: the recipe as `info` prints it. */
export function describeRecipe(r: Recipe): string {
  const batch = r.batchTokens % 2 ** 20 === 0 ? `${r.batchTokens / 2 ** 20}M (${r.batchTokens.toLocaleString('en-US')})` : r.batchTokens.toLocaleString('en-US');
  return (
    `lr ${r.lr.toExponential(1)}, batch ${batch} tokens, warmup ${r.warmup} steps, ${humanCount(r.tokens)} tokens, context ${r.seq}, ` +
    `AdamW β ${r.beta1}/${r.beta2} wd ${r.weightDecay}, clip ${r.clip.toFixed(1)}, cosine to ${r.minLrRatio * 100}%`
  );
}
