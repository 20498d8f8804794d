/**
 * Log-likelihood requests, scored in batches through the decoder's KV-cache path (Decoder.step: many sequences'
 * tokens in one pass over the model's blocks). A request asks for log P(ids[from..] | ids[..from)); requests with
 * the same context tokens (the choices of one question) share one prefill: the context is run once, its cache is
 * copied for each continuation, and only the continuations are run, together.
 */
import type { FloatArray } from '../kernels/backend.js';
import type { Decoder, KVCache } from '../inference/generate.js';

export interface LoglikRequest {
  /** The whole sequence (BOS, context, continuation). */
  ids: number[];
  /** Index of the first scored token (>= 1): ids[from..] is the continuation. */
  from: number;
}

export interface LoglikResult {
  /** Sum of the continuation tokens' log-probabilities (nats). */
  logprob: number;
  /** Whether every continuation token was the argmax of its row (greedy decoding would produce it). */
  greedy: boolean;
  /** Continuation tokens scored. */
  tokens: number;
}

export interface ScoreOptions {
  /** Sequences run together in one decoder step (default 8). */
  batch?: number;
  /** Tokens of one sequence per step while prefilling (default 128). */
  chunk?: number;
  /** Called after each finished request with the number finished so far. */
  onProgress?: (done: number) => void;
}

/** log softmax(row)[target] and whether target is the row's argmax, in float64. */
function tokenLogprob(row: ArrayLike<number>, target: number): [number, boolean] {
  let max = -Infinity;
  let arg = -1;
  for (let i = 0; i < row.length; i++) if (row[i] > max) (max = row[i]), (arg = i);
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max);
  return [row[target] - max - Math.log(sum), arg === target || row[target] === max];
}

/** A new cache holding the first `n` positions of `src`, with room for `maxSeq`. */
function forkCache(dec: Decoder, src: KVCache, n: number, maxSeq: number): KVCache {
  const dst = dec.newCache(maxSeq);
  dst.copyPrefix(src, n);
  return dst;
}

interface Group {
  /** Shared context tokens ids[..p) (the same for every member). */
  p: number;
  members: number[];
}

function sameRange(a: number[], b: number[], n: number): boolean {
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Scores the requests; results in request order. Adjacent requests with the same context tokens form a group that
 * shares one prefill. Work proceeds a batch of groups at a time: their contexts are prefilled together (chunked),
 * then their continuations are run together, `batch` sequences per step.
 */
export function scoreLoglik(dec: Decoder, requests: LoglikRequest[], o: ScoreOptions = {}): LoglikResult[] {
  const batch = Math.max(1, o.batch ?? 8);
  const chunk = Math.max(1, o.chunk ?? 128);
  const V = dec.config.vocabSize;
  const results: LoglikResult[] = new Array(requests.length);
  for (const r of requests) {
    if (!(r.from >= 1 && r.from < r.ids.length)) throw new RangeError(`scoreLoglik: from=${r.from} must be in [1, ${r.ids.length - 1}]`);
  }
  const groups: Group[] = [];
  requests.forEach((r, i) => {
    const g = groups[groups.length - 1];
    if (g && g.p === r.from && sameRange(requests[g.members[0]].ids, r.ids, r.from)) g.members.push(i);
    else groups.push({ p: r.from, members: [i] });
  });
  let finished = 0;
  for (let g0 = 0; g0 < groups.length; g0 += batch) {
    const gs = groups.slice(g0, g0 + batch);
    // 1. prefill each group's context ids[..p-1) ... up to ids[p-1], keeping the logits after the last context token
    const caches = gs.map((g) => {
      const longest = Math.max(...g.members.map((m) => requests[m].ids.length));
      return dec.newCache(Math.min(dec.config.maxSeqLen, g.members.length === 1 ? longest - 1 : g.p));
    });
    const last: FloatArray[] = new Array(gs.length);
    for (let pos = 0; ; pos += chunk) {
      const live = gs.map((g, k) => [g, k] as const).filter(([g]) => pos < g.p);
      if (live.length === 0) break;
      const items = live.map(([g, k]) => ({ cache: caches[k], tokens: requests[g.members[0]].ids.slice(pos, Math.min(g.p, pos + chunk)) }));
      const out = dec.step(items, 'last');
      live.forEach(([g, k], j) => {
        if (pos + chunk >= g.p) last[k] = out[j];
      });
    }
    // 2. the continuations: the scored tokens after the first are predicted from rows of a step over ids[p..len-1);
    //    a member of a shared group runs on its own copy of the group's cache, made when its batch starts
    type Cont = { req: number; group: number; cache: KVCache | null; logprob: number; greedy: boolean };
    const conts: Cont[] = [];
    gs.forEach((g, k) => {
      for (const m of g.members) {
        const [lp, gr] = tokenLogprob(last[k], requests[m].ids[g.p]);
        conts.push({ req: m, group: k, cache: null, logprob: lp, greedy: gr });
      }
    });
    const pending = conts.filter((c) => requests[c.req].ids.length - 1 > requests[c.req].from);
    for (let c0 = 0; c0 < pending.length; c0 += batch) {
      const cs = pending.slice(c0, c0 + batch);
      for (const c of cs) {
        const g = gs[c.group];
        c.cache = g.members.length === 1 ? caches[c.group] : forkCache(dec, caches[c.group], g.p, requests[c.req].ids.length - 1);
      }
      for (let pos = 0; ; pos += chunk) {
        const live = cs.filter((c) => requests[c.req].from + pos < requests[c.req].ids.length - 1);
        if (live.length === 0) break;
        const items = live.map((c) => {
          const r = requests[c.req];
          return { cache: c.cache!, tokens: r.ids.slice(r.from + pos, Math.min(r.ids.length - 1, r.from + pos + chunk)) };
        });
        const out = dec.step(items, 'all');
        live.forEach((c, j) => {
          const r = requests[c.req];
          const n = items[j].tokens.length;
          for (let i = 0; i < n; i++) {
            const [lp, gr] = tokenLogprob(out[j].subarray(i * V, (i + 1) * V), r.ids[r.from + pos + i + 1]);
            c.logprob += lp;
            c.greedy &&= gr;
          }
        });
      }
      for (const c of cs) c.cache = null; // a copy lives only while its batch runs
    }
    for (const c of conts) {
      const r = requests[c.req];
      results[c.req] = { logprob: c.logprob, greedy: c.greedy, tokens: r.ids.length - r.from };
      o.onProgress?.(++finished);
    }
  }
  return results;
}
