/**
 * `llama-ts serve` under load, over loopback, against the real CLI process. Prints one JSON object.
 *
 *   node dist/bench/serve.js [--preset mini-15m] [--requests 200] [--clients 16] [--tokens 128] [--streams 8]
 *                            [--rounds 3] [--parallel 16] [--backend native|ref] [--temperature 1]
 *
 * 1. Throughput: aggregate decode tokens/s of `--streams` concurrent streaming requests against one stream alone,
 *    interleaved (1, N, 1, N, … for --rounds) so both see the same machine load; each request (a 17-token prompt, so
 *    that prefill is a small part of the window) decodes --tokens
 *    tokens (ignore_eos; --temperature, default 1 as OpenAI's: sampling over the whole vocabulary costs a pass per
 *    token and row, 0 is greedy) and the rate is Σ(tokens − 1) / (last stream's last chunk − first stream's first chunk).
 * 2. Load: --requests requests from --clients concurrent clients. Every 10th (i % 10 = 3) is a stream its client
 *    drops after the first chunk; every 8th (i % 8 = 5) is malformed (bad JSON, wrong types, oversize prompt), the
 *    rest alternate completions/chat and streaming/JSON. Checked: every malformed one gets 400 with an error body,
 *    every other one exactly one complete answer (a stream: one finish_reason and one [DONE]), and the server's own
 *    counts (/health) agree: completed = answered requests, cancelled = dropped streams (each asks for the whole
 *    context, so it is dropped long before its end).
 *    Reported: p50/p99 time to first token of the streaming requests, total wall time.
 *
 * Random-init weights in a GGUF (speed does not depend on the values). On a shared machine compare numbers from one
 * run (the ratio is interleaved for that reason).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { makeConfig } from '../src/model/config.js';
import { Llama } from '../src/model/llama.js';
import { createRefBackend } from '../src/kernels/ref.js';
import { writeLlamaGguf } from '../src/io/gguf-llama.js';
import { byteVocab } from '../src/tokenizer/vocab.js';

const { values } = parseArgs({
  options: {
    preset: { type: 'string', default: 'mini-15m' }, requests: { type: 'string', default: '200' }, clients: { type: 'string', default: '16' },
    tokens: { type: 'string', default: '128' }, streams: { type: 'string', default: '8' }, rounds: { type: 'string', default: '3' },
    parallel: { type: 'string', default: '16' }, backend: { type: 'string' }, temperature: { type: 'string', default: '1' },
  },
});
const REQUESTS = Number(values.requests);
const CLIENTS = Number(values.clients);
const TOKENS = Number(values.tokens);
const STREAMS = Number(values.streams);
const ROUNDS = Number(values.rounds);
const TEMPERATURE = Number(values.temperature);
const root = fileURLToPath(new URL('../../', import.meta.url));

function cpuFlags(): string[] {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('flags')) ?? '';
    return line.split(':')[1].trim().split(/\s+/).filter((f) => /^(avx2|fma|avx512f|avx512bw|avx512_vnni|avx512_bf16|avxvnni|amx_\w+)$/.test(f));
  } catch {
    return [];
  }
}

// ------------------------------------------------------------------ the server under test
const config = makeConfig(String(values.preset));
const dir = mkdtempSync(join(tmpdir(), 'llama-ts-bench-serve-'));
const path = join(dir, 'model.gguf');
{
  const model = new Llama(config, createRefBackend('f32'));
  model.init(1);
  writeLlamaGguf(path, model, byteVocab(config.vocabSize));
}
const args = [join(root, 'bin', 'llama-ts.js'), 'serve', '--model', path, '--port', '0', '--model-name', 'bench', '--parallel', String(values.parallel), '--queue', '512'];
if (values.backend) args.push('--backend', String(values.backend));
const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
const port = await new Promise<number>((resolve, reject) => {
  let out = '';
  child.stdout.on('data', (b) => {
    out += b;
    const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
    if (m) resolve(Number(m[1]));
  });
  child.on('exit', (code) => reject(new Error(`serve exited with ${code}`)));
});
const url = `http://127.0.0.1:${port}`;

const prompt = 'Once upon a time, there was a little girl who lived in a village near the forest.';

interface StreamResult {
  status: number;
  ttftMs: number | null;
  firstTokenAt: number;
  lastTokenAt: number;
  tokens: number;
  finishes: number;
  dones: number;
  error: boolean;
}

/** One streaming request; `dropAfterFirst` aborts it after its first content chunk. */
async function stream(body: Record<string, unknown>, path = '/v1/completions', dropAfterFirst = false): Promise<StreamResult> {
  const t0 = performance.now();
  const ac = new AbortController();
  const res = await fetch(url + path, { method: 'POST', body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }), signal: ac.signal });
  const r: StreamResult = { status: res.status, ttftMs: null, firstTokenAt: 0, lastTokenAt: 0, tokens: 0, finishes: 0, dones: 0, error: false };
  if (res.status !== 200) {
    await res.text();
    return r;
  }
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let buf = '';
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let at: number;
      while ((at = buf.indexOf('\n\n')) >= 0) {
        const data = buf.slice(6, at);
        buf = buf.slice(at + 2);
        if (data === '[DONE]') {
          r.dones++;
          continue;
        }
        const ev = JSON.parse(data) as { error?: unknown; usage?: { completion_tokens: number }; choices: { finish_reason: string | null }[] };
        if (ev.error) r.error = true;
        if (ev.usage) r.tokens = ev.usage.completion_tokens;
        for (const c of ev.choices ?? []) if (c.finish_reason) r.finishes++;
        // the server sends a choice's first chunk as soon as its first token is sampled (even when the token's text
        // is held back, e.g. half a UTF-8 character), and the usage chunk right after the last token
        const now = performance.now();
        if (r.ttftMs === null) {
          r.ttftMs = now - t0;
          r.firstTokenAt = now;
        }
        r.lastTokenAt = now;
        if (dropAfterFirst && r.ttftMs !== null) {
          ac.abort();
          return r;
        }
      }
    }
  } catch (e) {
    if (!dropAfterFirst) throw e;
  }
  return r;
}

// ------------------------------------------------------------------ 1. throughput, 1 vs N streams, interleaved
/** The server process's CPU seconds so far (user + system, all its threads; Linux /proc), or NaN elsewhere. */
function serverCpuSeconds(): number {
  try {
    const f = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100 on Linux)
  } catch {
    return NaN;
  }
}
/** Decode tokens/s over wall time, and over the server's CPU time (less sensitive to other load on the machine). */
async function aggregate(n: number): Promise<{ wall: number; cpu: number }> {
  const cpu0 = serverCpuSeconds();
  const rs = await Promise.all(Array.from({ length: n }, (_, i) => stream({ prompt: 'Once upon a time', max_tokens: TOKENS, ignore_eos: true, seed: i, temperature: TEMPERATURE })));
  const cpu = serverCpuSeconds() - cpu0;
  const first = Math.min(...rs.map((r) => r.firstTokenAt));
  const last = Math.max(...rs.map((r) => r.lastTokenAt));
  const tokens = rs.reduce((a, r) => a + r.tokens - 1, 0);
  return { wall: tokens / ((last - first) / 1000), cpu: rs.reduce((a, r) => a + r.tokens, 0) / cpu };
}
await aggregate(1); // warm-up
const single: number[] = [];
const multi: number[] = [];
const singleCpu: number[] = [];
const multiCpu: number[] = [];
for (let k = 0; k < ROUNDS; k++) {
  const a = await aggregate(1);
  const b = await aggregate(STREAMS);
  single.push(a.wall);
  multi.push(b.wall);
  singleCpu.push(a.cpu);
  multiCpu.push(b.cpu);
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)];
};

// ------------------------------------------------------------------ 2. load test
const MALFORMED: { path: string; body: string }[] = [
  { path: '/v1/completions', body: '{"prompt": "x", "max_tokens": ' },
  { path: '/v1/completions', body: JSON.stringify({ prompt: 'x', max_tokens: 'many' }) },
  { path: '/v1/chat/completions', body: JSON.stringify({ messages: [{ role: 'user', content: 42 }] }) },
  { path: '/v1/completions', body: JSON.stringify({ prompt: 'x'.repeat(config.maxSeqLen + 10) }) },
  { path: '/v1/completions', body: JSON.stringify({ prompt: 'x', temperature: 'hot' }) },
];
const before = await (await fetch(`${url}/health`)).json() as { completed: number; cancelled: number };
const outcome = { ok: 0, malformed400: 0, malformedOther: 0, dropped: 0, droppedFinishedFirst: 0, lost: 0, doubled: 0, rejected429: 0, statuses: {} as Record<string, number> };
const ttft: number[] = [];
let next = 0;
const t0 = performance.now();
async function client(): Promise<void> {
  for (let i = next++; i < REQUESTS; i = next++) {
    const max_tokens = 8 + (i % 5) * 8;
    if (i % 8 === 5) {
      const m = MALFORMED[(i >> 3) % MALFORMED.length];
      const res = await fetch(url + m.path, { method: 'POST', body: m.body });
      const body = await res.json() as { error?: { message?: string } };
      if (res.status === 400 && typeof body.error?.message === 'string') outcome.malformed400++;
      else outcome.malformedOther++;
      continue;
    }
    const chat = i % 2 === 0;
    const payload = chat ? { messages: [{ role: 'user', content: prompt }], max_tokens, ignore_eos: true, seed: i } : { prompt, max_tokens, ignore_eos: true, seed: i };
    const p = chat ? '/v1/chat/completions' : '/v1/completions';
    if (i % 10 === 3) {
      // long enough (ignore_eos, up to the context) that the drop comes long before the end
      const r = await stream({ ...payload, max_tokens: config.maxSeqLen }, p, true);
      outcome.dropped++;
      if (r.dones > 0 || r.finishes > 0) outcome.droppedFinishedFirst++;
      continue;
    }
    if (i % 4 < 2) {
      const r = await stream(payload, p);
      outcome.statuses[r.status] = (outcome.statuses[r.status] ?? 0) + 1;
      if (r.status === 429) outcome.rejected429++;
      else if (r.status !== 200 || r.error || r.dones === 0 || r.finishes === 0 || r.tokens !== max_tokens) outcome.lost++;
      else if (r.dones > 1 || r.finishes > 1) outcome.doubled++;
      else {
        outcome.ok++;
        ttft.push(r.ttftMs as number);
      }
    } else {
      const res = await fetch(url + p, { method: 'POST', body: JSON.stringify(payload) });
      outcome.statuses[res.status] = (outcome.statuses[res.status] ?? 0) + 1;
      const body = await res.json() as { choices?: unknown[]; usage?: { completion_tokens: number } };
      if (res.status === 429) outcome.rejected429++;
      else if (res.status !== 200 || body.choices?.length !== 1 || body.usage?.completion_tokens !== max_tokens) outcome.lost++;
      else outcome.ok++;
    }
  }
}
await Promise.all(Array.from({ length: CLIENTS }, client));
const wall = (performance.now() - t0) / 1000;
// the server's view: give dropped connections a moment to be noticed
await new Promise((r) => setTimeout(r, 200));
const after = await (await fetch(`${url}/health`)).json() as { slots_busy: number; queue: number; completed: number; cancelled: number };
const serverCompleted = after.completed - before.completed;
const serverCancelled = after.cancelled - before.cancelled;

const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
child.kill('SIGTERM');
const exitCode = await exited;
rmSync(dir, { recursive: true, force: true });

const ratio = median(multi) / median(single);
const malformedTotal = outcome.malformed400 + outcome.malformedOther;
const checks = {
  every_malformed_got_400: outcome.malformedOther === 0,
  none_lost: outcome.lost === 0,
  none_answered_twice: outcome.doubled === 0,
  // a dropped stream ends as cancelled on the server unless it had already finished; every other sequence completes
  server_counts_agree: serverCompleted === outcome.ok && serverCancelled === outcome.dropped - outcome.droppedFinishedFirst,
  idle_after: after.slots_busy === 0 && after.queue === 0,
  sigterm_exit_0: exitCode === 0,
  [`aggregate_${STREAMS}_streams_ge_3x_single`]: ratio >= 3,
};
console.log(JSON.stringify({
  bench: 'serve', preset: values.preset, cpu: cpus()[0]?.model, cpu_flags: cpuFlags(), cpus: cpus().length, node: process.version,
  backend: values.backend ?? 'default',
  throughput: {
    tokens_per_stream: TOKENS, streams: STREAMS, rounds: ROUNDS, temperature: TEMPERATURE,
    single_stream_decode_tokens_per_s: single.map((x) => Math.round(x)), concurrent_aggregate_decode_tokens_per_s: multi.map((x) => Math.round(x)),
    ratio_of_medians: Number(ratio.toFixed(2)),
    // every token (prefill included) per CPU second of the server process: what batching saves in work, whatever the load
    single_stream_tokens_per_server_cpu_s: singleCpu.map((x) => Math.round(x)), concurrent_tokens_per_server_cpu_s: multiCpu.map((x) => Math.round(x)),
  },
  load: {
    requests: REQUESTS, clients: CLIENTS, wall_s: Number(wall.toFixed(2)), answered: outcome.ok, malformed: malformedTotal, malformed_400: outcome.malformed400,
    dropped_mid_stream: outcome.dropped, lost: outcome.lost, answered_twice: outcome.doubled, rejected_429: outcome.rejected429, statuses: outcome.statuses,
    server_completed: serverCompleted, server_cancelled: serverCancelled,
    ttft_ms: { n: ttft.length, p50: Number(quantile(ttft, 0.5).toFixed(1)), p99: Number(quantile(ttft, 0.99).toFixed(1)) },
  },
  checks,
}, null, 1));
process.exitCode = Object.values(checks).every(Boolean) ? 0 : 1;
