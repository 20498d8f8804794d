/**
 * Compute- and inference-budget model sizing under the Chinchilla parametric loss fit.
 *
 * Source: Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models", approach 3 (eq. 2 and 4):
 *   L(N, D) = E + A / N^α + B / D^β,   E 1.69, A 406.4, B 410.7, α 0.34, β 0.28,
 * with training compute C ≈ 6·N·D FLOPs (N parameters, D training tokens; Kaplan et al. 2020).
 *
 * Minimising L under 6·N·D = C (Lagrange: α·A·N^-α = β·B·D^-β) gives the closed form (Hoffmann eq. 4)
 *   N_opt(C) = G · (C/6)^a,   D_opt(C) = G^-1 · (C/6)^b,
 *   G = (α·A / (β·B))^(1/(α+β)),   a = β/(α+β),   b = α/(α+β).
 * At that optimum B·D^-β = (α/β)·A·N^-α, so the compute-optimal loss is L = E + (1 + α/β)·A·N^-α, which
 * inverts to the compute-optimal model for a target loss ℓ: N*(ℓ) = ((1 + α/β)·A / (ℓ − E))^(1/α).
 *
 * Inference-aware sizing (as in Sardana & Frankle 2023, "Beyond Chinchilla-Optimal"): serving costs 2·N FLOPs per
 * token, so a model that serves D_inf tokens costs 6·N·D + 2·N·D_inf in total. For a fixed target loss ℓ the
 * tokens a model of size N needs are D(N, ℓ) = (B / (ℓ − E − A·N^-α))^(1/β); the total cost is minimised
 * numerically over N (it is unimodal in log N between the smallest model that can reach ℓ and N*(ℓ)).
 */
import { UserError } from '../util/errors.js';
import { RECIPES } from '../model/recipe.js';

export interface ChinchillaFit {
  E: number;
  A: number;
  B: number;
  alpha: number;
  beta: number;
}

/** Hoffmann et al. 2022, approach 3 (parametric fit), as published. */
export const CHINCHILLA: Readonly<ChinchillaFit> = Object.freeze({ E: 1.69, A: 406.4, B: 410.7, alpha: 0.34, beta: 0.28 });

export function validateFit(f: ChinchillaFit): void {
  for (const k of ['E', 'A', 'B', 'alpha', 'beta'] as const) {
    if (!Number.isFinite(f[k]) || f[k] <= 0) throw new UserError(`scaling-law constant ${k} must be a positive number, got ${f[k]}`);
  }
}

/** Predicted loss L(N, D). */
export function predictedLoss(n: number, d: number, f: ChinchillaFit = CHINCHILLA): number {
  return f.E + f.A / n ** f.alpha + f.B / d ** f.beta;
}

export function trainingFlops(n: number, d: number): number {
  return 6 * n * d;
}

export interface Allocation {
  params: number;
  tokens: number;
  flops: number;
  loss: number;
}

function allocation(n: number, d: number, f: ChinchillaFit): Allocation {
  return { params: n, tokens: d, flops: trainingFlops(n, d), loss: predictedLoss(n, d, f) };
}

function requirePositive(x: number, what: string): void {
  if (!Number.isFinite(x) || x <= 0) throw new UserError(`${what} must be a positive number, got ${x}`);
}

/** Closed-form compute-optimal allocation for C training FLOPs (Hoffmann et al. eq. 4). */
export function computeOptimal(c: number, f: ChinchillaFit = CHINCHILLA): Allocation {
  requirePositive(c, 'compute budget');
  const g = ((f.alpha * f.A) / (f.beta * f.B)) ** (1 / (f.alpha + f.beta));
  const a = f.beta / (f.alpha + f.beta);
  const b = f.alpha / (f.alpha + f.beta);
  return allocation(g * (c / 6) ** a, (c / 6) ** b / g, f);
}

/**
 * Golden-section search for the minimum of a unimodal function on [lo, hi]; returns the argmin.
 * Used on log-scaled variables, so a relative tolerance on the argument is enough.
 */
export function goldenMin(fn: (x: number) => number, lo: number, hi: number, tol = 1e-12): number {
  const r = (Math.sqrt(5) - 1) / 2;
  let a = lo;
  let b = hi;
  let c = b - r * (b - a);
  let d = a + r * (b - a);
  let fc = fn(c);
  let fd = fn(d);
  for (let i = 0; i < 400 && b - a > tol * Math.max(1, Math.abs(a) + Math.abs(b)); i++) {
    if (fc < fd) {
      b = d;
      d = c;
      fd = fc;
      c = b - r * (b - a);
      fc = fn(c);
    } else {
      a = c;
      c = d;
      fc = fd;
      d = a + r * (b - a);
      fd = fn(d);
    }
  }
  return (a + b) / 2;
}

/**
 * The same optimum found without the closed form: minimise L(N, C/(6N)) over log N by golden-section search.
 * Kept as a check on the algebra (and used by the tests).
 */
export function computeOptimalNumeric(c: number, f: ChinchillaFit = CHINCHILLA): Allocation {
  requirePositive(c, 'compute budget');
  const lossAt = (logN: number) => predictedLoss(Math.exp(logN), c / (6 * Math.exp(logN)), f);
  // Any sensible optimum lies between 1 parameter and C/6 parameters (≥ 1 token).
  const logN = goldenMin(lossAt, 0, Math.log(c / 6));
  const n = Math.exp(logN);
  return allocation(n, c / (6 * n), f);
}

/** Compute-optimal loss for a budget: E + (1 + α/β)·A·N_opt^-α. */
export function computeOptimalLoss(c: number, f: ChinchillaFit = CHINCHILLA): number {
  return computeOptimal(c, f).loss;
}

/** The compute-optimal model that reaches loss ℓ, and the (minimal) training compute it needs. */
export function computeOptimalForLoss(loss: number, f: ChinchillaFit = CHINCHILLA): Allocation {
  if (!(loss > f.E)) throw new UserError(`target loss ${loss} is not above the irreducible loss E = ${f.E}`);
  const n = (((1 + f.alpha / f.beta) * f.A) / (loss - f.E)) ** (1 / f.alpha);
  // Optimality condition α·A·N^-α = β·B·D^-β  =>  D = (β·B / (α·A·N^-α))^(1/β).
  const d = ((f.beta * f.B) / (f.alpha * f.A * n ** -f.alpha)) ** (1 / f.beta);
  return allocation(n, d, f);
}

/** Tokens a model of N parameters must be trained on to reach loss ℓ (Infinity if it never can). */
export function tokensForLoss(n: number, loss: number, f: ChinchillaFit = CHINCHILLA): number {
  const slack = loss - f.E - f.A / n ** f.alpha;
  return slack > 0 ? (f.B / slack) ** (1 / f.beta) : Infinity;
}

export interface InferenceAware extends Allocation {
  inferenceTokens: number;
  /** 2·N FLOPs per served token × inference tokens. */
  inferenceFlops: number;
  totalFlops: number;
}

function withInference(a: Allocation, inferenceTokens: number): InferenceAware {
  const inferenceFlops = 2 * a.params * inferenceTokens;
  return { ...a, inferenceTokens, inferenceFlops, totalFlops: a.flops + inferenceFlops };
}

/** Total lifetime cost (training + serving) of the compute-optimal model for loss ℓ. */
export function computeOptimalWithInference(loss: number, inferenceTokens: number, f: ChinchillaFit = CHINCHILLA): InferenceAware {
  return withInference(computeOptimalForLoss(loss, f), inferenceTokens);
}

/**
 * The model size and token count that reach loss ℓ at minimum total cost 6·N·D + 2·N·D_inf.
 * With D_inf = 0 this is the compute-optimal model itself; more inference pushes N down and D up.
 */
export function inferenceOptimal(loss: number, inferenceTokens: number, f: ChinchillaFit = CHINCHILLA): InferenceAware {
  if (!Number.isFinite(inferenceTokens) || inferenceTokens < 0) {
    throw new UserError(`inference tokens must be a number >= 0, got ${inferenceTokens}`);
  }
  const chin = computeOptimalForLoss(loss, f);
  if (inferenceTokens === 0) return withInference(chin, 0);
  // The smallest model that can reach ℓ at all: A·N^-α = ℓ − E.
  const nMin = (f.A / (loss - f.E)) ** (1 / f.alpha);
  const cost = (logN: number) => {
    const n = Math.exp(logN);
    return 6 * n * tokensForLoss(n, loss, f) + 2 * n * inferenceTokens;
  };
  // The total-cost optimum lies in (nMin, N*]: beyond N* both training and serving cost more.
  const logN = goldenMin(cost, Math.log(nMin) + 1e-9, Math.log(chin.params));
  const n = Math.exp(logN);
  return withInference(allocation(n, tokensForLoss(n, loss, f), f), inferenceTokens);
}

export interface ModelPoint {
  name: string;
  params: number;
  tokens: number;
  loss: number;
  flops: number;
  /** The compute-optimal model with the same predicted loss. */
  equalLossOptimal: Allocation;
  /** Inference FLOPs per served token: 2·N for this model and for the equal-loss compute-optimal one. */
  inferenceFlopsPerToken: number;
  optimalInferenceFlopsPerToken: number;
  /** 1 − N / N*: the fraction of serving cost saved (negative: this model is larger than compute-optimal). */
  inferenceSaving: number;
  /** Extra training FLOPs spent over the compute-optimal model of equal loss. */
  extraTrainingFlops: number;
  /** Served tokens after which the extra training has paid for itself (null if it never costs or never pays). */
  breakEvenTokens: number | null;
}

/** Where a chosen (N, D) sits against the compute-optimal frontier. */
export function comparePoint(name: string, params: number, tokens: number, f: ChinchillaFit = CHINCHILLA): ModelPoint {
  const loss = predictedLoss(params, tokens, f);
  const opt = computeOptimalForLoss(loss, f);
  const flops = trainingFlops(params, tokens);
  const extra = flops - opt.flops;
  const savedPerToken = 2 * (opt.params - params);
  return {
    name,
    params,
    tokens,
    loss,
    flops,
    equalLossOptimal: opt,
    inferenceFlopsPerToken: 2 * params,
    optimalInferenceFlopsPerToken: 2 * opt.params,
    inferenceSaving: 1 - params / opt.params,
    extraTrainingFlops: extra,
    breakEvenTokens: savedPerToken > 0 && extra > 0 ? extra / savedPerToken : null,
  };
}

/** LLaMA's choices (Touvron et al. 2023, Table 2 / section 2): model preset and training tokens. */
export const LLAMA_RUNS: readonly { preset: string; tokens: number }[] = ['llama-7b', 'llama-13b', 'llama-33b', 'llama-65b'].map((preset) => ({
  preset, tokens: RECIPES[preset].tokens, // the presets' recipes (model/recipe.ts): 1.0T, 1.0T, 1.4T, 1.4T
}));
