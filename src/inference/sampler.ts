/** Next-token sampling from a row of logits: greedy, temperature, top-k, top-p (nucleus), repetition penalty. */
import type { Backend, FloatArray } from '../kernels/backend.js';
import type { Rng } from '../util/rng.js';

export interface SamplingOptions {
  /** 0 means greedy. */
  temperature: number;
  /** Keep the k most likely tokens (0 = all). */
  topK: number;
  /** Keep the smallest set whose probability reaches p (1 = all). */
  topP: number;
}

export const SAMPLING_DEFAULTS: SamplingOptions = { temperature: 0.8, topK: 0, topP: 0.95 };

export function argmax(logits: ArrayLike<number>): number {
  // the best value held in a local (one load an element: the first call, before the loop is optimised, is a
  // time-to-first-token cost); the first of equal maxima wins, and a NaN past the first element never does
  let best = 0;
  let bv = logits[0];
  for (let i = 1; i < logits.length; i++) {
    const v = logits[i];
    if (v > bv) {
      bv = v;
      best = i;
    }
  }
  return best;
}

/**
 * argmax through the backend's native kernel when it has one (the native addon's `argmax`: the same index, ~10×
 * faster at V = 32000, a greedy decode step's last JavaScript loop), else argmax.
 */
export function argmaxOn(be: Backend | undefined, logits: ArrayLike<number>): number {
  const addon = (be as { addon?: { argmax?: (x: Float32Array, n: number) => number } } | undefined)?.addon;
  if (addon?.argmax && logits instanceof Float32Array && logits.length > 0) return addon.argmax(logits, logits.length);
  return argmax(logits);
}

/**
 * Repetition penalty of Keskar et al. (CTRL), as llama.cpp and Hugging Face apply it: for every distinct token in
 * `context`, a positive logit is divided by `penalty` and a negative one multiplied by it. In place.
 */
export function applyRepetitionPenalty(logits: { [i: number]: number; length: number }, context: ArrayLike<number>, penalty: number): void {
  if (penalty === 1) return;
  const seen = new Set<number>();
  for (let i = 0; i < context.length; i++) {
    const t = context[i];
    if (seen.has(t) || t < 0 || t >= logits.length) continue;
    seen.add(t);
    logits[t] = logits[t] > 0 ? logits[t] / penalty : logits[t] * penalty;
  }
}

/** The unnormalised probabilities of one sampleToken call: one buffer reused (a batch samples many rows per step). */
let probsScratch = new Float64Array(0);

/** The backend path's buffers, per backend: the row over the temperature, its probabilities, its log-sum-exp. */
const rowScratch = new WeakMap<Backend, { x: FloatArray; p: FloatArray; lse: FloatArray }>();

/**
 * exp((logits − max)/temperature) for every id, and their sum: in float64 in JavaScript, or — given a backend and a
 * temperature of at least 0.01 — as the softmax of logits/temperature in the backend's kernels (scale, logSumExp,
 * softmaxScaled: float32, vectorised), which is an order of magnitude faster at V = 32000 (bench/serve.ts samples
 * every row of a batch each step).
 */
function probabilities(logits: ArrayLike<number>, temperature: number, be: Backend | undefined): { probs: ArrayLike<number>; sum: number } {
  const V = logits.length;
  // below 0.01 the scaled logits could leave float32's range (1/T times a logit); float64 handles any temperature
  if (be && temperature >= 0.01) {
    let b = rowScratch.get(be);
    if (!b || b.x.length < V) rowScratch.set(be, (b = { x: be.alloc(V), p: be.alloc(V), lse: be.alloc(1) }));
    const x = V === b.x.length ? b.x : b.x.subarray(0, V);
    const p = V === b.p.length ? b.p : b.p.subarray(0, V);
    x.set(logits);
    be.scale(x, 1 / temperature, V);
    be.logSumExp(b.lse, x, 1, V);
    be.softmaxScaled(p, x, b.lse, 1, V, 1);
    let sum = 0;
    for (let i = 0; i < V; i++) sum += p[i];
    return { probs: p, sum };
  }
  let max = -Infinity;
  for (let i = 0; i < V; i++) if (logits[i] > max) max = logits[i];
  if (probsScratch.length < V) probsScratch = new Float64Array(V);
  const probs = probsScratch;
  let sum = 0;
  for (let i = 0; i < V; i++) sum += probs[i] = Math.exp((logits[i] - max) / temperature);
  return { probs, sum };
}

/**
 * One token drawn from a row of logits with `rng`: greedy at temperature 0, else from the softmax at the
 * temperature, filtered by top-k and top-p. With `be` the probabilities come from the backend's kernels (float32):
 * every caller that must agree with another (serve with generate) passes the model's backend.
 */
export function sampleToken(logits: ArrayLike<number>, o: SamplingOptions, rng: Rng, be?: Backend): number {
  if (o.temperature <= 0) return argmaxOn(be, logits);
  const V = logits.length;
  const { probs, sum } = probabilities(logits, o.temperature, be);
  const filtered = (o.topK > 0 && o.topK < V) || o.topP < 1;
  if (!filtered) {
    // plain temperature sampling: no sort needed
    let r = rng.next() * sum;
    for (let i = 0; i < V; i++) {
      r -= probs[i];
      if (r <= 0) return i;
    }
    return argmaxOn(be, logits);
  }
  // The kept tokens are a prefix of the vocabulary sorted by probability (ties by id). Sorting all V ids costs
  // milliseconds a token at V = 32000, and the prefix is usually short: sort only the ids at or above a cutoff —
  // they are a prefix of that order, since every other id is less likely — and lower the cutoff until the prefix
  // decides the outcome (top-k filled, or top-p reached inside it); cutoff 0 takes every id. The cutoffs are
  // relative to the most likely id. The kept tokens and the draw are those of the full sort, bit for bit
  // (test/sampler.test.ts checks against it).
  let top = 0;
  for (let i = 0; i < V; i++) if (probs[i] > top) top = probs[i];
  for (let cutoff = top * 1e-4; ; cutoff = cutoff > top * 1e-30 ? cutoff * 1e-6 : 0) {
    const kept = nucleus(probs, V, sum, o, cutoff);
    if (!kept) continue;
    let mass = 0;
    for (const i of kept) mass += probs[i];
    let r = rng.next() * mass;
    for (const i of kept) {
      r -= probs[i];
      if (r <= 0) return i;
    }
    return kept[kept.length - 1];
  }
}

/**
 * The ids that top-k and top-p keep, in order, found among the ids whose unnormalised probability is at least
 * `cutoff`; null when those ids do not decide it (too few for top-k and top-p not reached among them).
 */
function nucleus(probs: ArrayLike<number>, V: number, sum: number, o: SamplingOptions, cutoff: number): number[] | null {
  let order: number[] = [];
  if (cutoff === 0) order = Array.from({ length: V }, (_, i) => i); // every id (NaN probabilities included)
  else for (let i = 0; i < V; i++) if (probs[i] >= cutoff) order.push(i);
  let decided = order.length === V;
  order = orderByProbability(order, probs);
  if (o.topK > 0 && o.topK < V && order.length >= o.topK) {
    order = order.slice(0, o.topK);
    decided = true;
  }
  if (o.topP < 1) {
    let acc = 0;
    for (let i = 0; i < order.length; i++) {
      acc += probs[order[i]] / sum;
      if (acc >= o.topP) return order.slice(0, i + 1);
    }
  }
  return decided ? order : null;
}

/** Candidates above which the radix order (below) replaces the comparison sort (its fixed cost is two small tables). */
const RADIX_MIN = 64;
const radixCounts = new Uint32Array(2048);
let radixScratch = { keys: new Uint32Array(0), ids: new Uint32Array(0), keys2: new Uint32Array(0), ids2: new Uint32Array(0) };

/**
 * `ids` (ascending) ordered by probability, most likely first, ties by id: `ids.sort((a, b) => probs[b] - probs[a] ||
 * a - b)`, exactly. A comparison sort of a flat row's candidates (a model at random init or early in training, or a
 * high temperature: every id within 1e-4 of the top) costs ~10 ms at V = 32000, several times the decode step it
 * follows; so where the probabilities are float32 (the backend's softmax, every decoding command) or float64 values,
 * all of them finite and non-negative, the ids go through a stable LSD radix sort on their bit patterns instead
 * (an IEEE float ≥ +0 orders as its bits do): 11 bits a pass, 3 passes for float32, 6 for float64.
 */
export function orderByProbability(ids: number[], probs: ArrayLike<number>): number[] {
  const n = ids.length;
  const wide = probs instanceof Float64Array;
  if (n < RADIX_MIN || !(probs instanceof Float32Array || wide)) return ids.sort((a, b) => probs[b] - probs[a] || a - b);
  const words = new Uint32Array(probs.buffer, probs.byteOffset, probs.length * (wide ? 2 : 1));
  if (radixScratch.ids.length < n) {
    const m = Math.max(n, 2 * radixScratch.ids.length);
    radixScratch = { keys: new Uint32Array(m), ids: new Uint32Array(m), keys2: new Uint32Array(m), ids2: new Uint32Array(m) };
  }
  let { keys, ids: cur, keys2, ids2 } = radixScratch;
  const counts = radixCounts;
  // float64: the low word first (3 passes), then the high word; float32: its one word. The key is the word's
  // complement, so that ascending keys are descending probabilities; the stable passes keep ties in id order.
  for (let word = wide ? 0 : 1; word < 2; word++) {
    for (let j = 0; j < n; j++) {
      const id = ids[j];
      const hi = words[wide ? 2 * id + 1 : id];
      if (hi >= 0x7f800000) return ids.sort((a, b) => probs[b] - probs[a] || a - b); // NaN, Infinity, negative, -0
      cur[j] = id;
      keys[j] = ~(wide && word === 0 ? words[2 * id] : hi) >>> 0;
    }
    for (let shift = 0; shift < 32; shift += 11) {
      counts.fill(0);
      for (let j = 0; j < n; j++) counts[(keys[j] >>> shift) & 2047]++;
      let at = 0;
      for (let b = 0; b < 2048; b++) {
        const c = counts[b];
        counts[b] = at;
        at += c;
      }
      for (let j = 0; j < n; j++) {
        const d = counts[(keys[j] >>> shift) & 2047]++;
        keys2[d] = keys[j];
        ids2[d] = cur[j];
      }
      const tk = keys;
      keys = keys2;
      keys2 = tk;
      const ti = cur;
      cur = ids2;
      ids2 = ti;
    }
    if (wide && word === 0) for (let j = 0; j < n; j++) ids[j] = cur[j]; // the next word's pass reads ids in this order
  }
  for (let j = 0; j < n; j++) ids[j] = cur[j];
  return ids;
}

/** log-softmax of one row, in float64. */
export function logSoftmax(logits: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  const lse = max + Math.log(sum);
  const out = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i] - lse;
  return out;
}
