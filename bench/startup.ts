/**
 * Start-up and memory of inference with memory-mapped weights (issue 19), whole processes, interleaved runs, one
 * JSON object on stdout. Every timing is the wall time of a fresh `llama-ts` process (node start included).
 *
 *   node dist/bench/startup.js [--reps 7] [--llama2c /path/to/run] [--tokenizer /path/to/tokenizer.bin]
 *                              [--baseline /path/to/other/checkout] [--big] [--only cli,mini,big]
 *
 * - cli: `llama-ts --help` and `llama-ts info --preset mini-15m` (this checkout, and --baseline's when given).
 * - mini: a mini-15m-shaped llama2.c file (random weights, 1 thread). Time to first token = a `generate -n 1`
 *   process, with the model file in the page cache (warm) and evicted from it (cold: `dd iflag=nocache`, which drops
 *   the file's cached pages; node and the compiled JavaScript stay cached); mapped (default), --no-mmap (the read
 *   path) and --baseline's. End to end: `generate -n 240` greedy against llama2.c's run.c (`-t 0 -n 240`) on the
 *   same file, LLAMA_TS_THREADS=1 (run.c is single-threaded), with peak RSS (/usr/bin/time) for each.
 * - big (--big): a ~1 GB F32 GGUF (dim 1024, 16 layers, vocab 32000) and a Q8_0 GGUF of llama2.c's 110M shape
 *   (dim 768, 12 layers, 12 heads, vocab 32000): time to first token warm and peak RSS against the file size,
 *   mapped and --no-mmap; and two `chat` processes holding the 1 GB model at once: their Rss / Pss (proportional
 *   share) from /proc/PID/smaps_rollup — mapped, the weights are one copy in the page cache shared by both.
 *
 * Environment: the runs drop NODE_EXTRA_CA_CERTS (see BASE_ENV; --keep-env keeps it) and, where it was set, time
 * node, the first token and the 240-token run with it too.
 *
 * --tokenizer: llama2.c's tokenizer.bin (32000 SentencePiece pieces; karpathy/llama2.c has it), copied beside the
 * model; without it our byte vocabulary padded to 32000 is written. Timings on a shared machine are noisy: runs are
 * interleaved and the median and minimum are reported.
 */
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { makeConfig, type LlamaConfig } from '../src/model/config.js';
import { Llama } from '../src/model/llama.js';
import { createBackend } from '../src/kernels/index.js';
import { saveModelAs } from '../src/io/formats.js';
import { Rng } from '../src/util/rng.js';

const { values } = parseArgs({
  options: {
    reps: { type: 'string', default: '7' }, llama2c: { type: 'string' }, tokenizer: { type: 'string' }, baseline: { type: 'string' },
    big: { type: 'boolean' }, 'keep-env': { type: 'boolean' }, only: { type: 'string', default: 'cli,mini,big' }, keep: { type: 'string' },
  },
});
const REPS = Number(values.reps);
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(ROOT, 'bin', 'llama-ts.js');
const BASE_CLI = values.baseline ? join(String(values.baseline), 'bin', 'llama-ts.js') : null;
const only = new Set(String(values.only).split(','));
const TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : null;
const dir = values.keep ? String(values.keep) : mkdtempSync(join(tmpdir(), 'llama-ts-startup-'));

interface Run { seconds: number; cpu_seconds: number | null; rss_kib: number | null; stdout: string }

/**
 * The children's environment: this process's, less NODE_EXTRA_CA_CERTS unless --keep-env. With that variable set, every
 * Node process parses the certificate bundle it names before running anything (this sandbox sets it to the system's
 * 200 KB bundle for its HTTPS proxy: `node -e 0` 0.059 s against 0.025 s without, medians of 9); a stock environment
 * does not set it, and llama-ts makes no TLS connection in these commands. The runs with it are reported beside
 * (first_token_warm.mapped_extra_ca_certs, generate_240.llama_ts_extra_ca_certs, cli.node_empty_extra_ca_certs).
 */
const EXTRA_CA = process.env.NODE_EXTRA_CA_CERTS;
const BASE_ENV: NodeJS.ProcessEnv = { ...process.env };
if (!values['keep-env']) delete BASE_ENV.NODE_EXTRA_CA_CERTS;
const WITH_CA: Record<string, string> = EXTRA_CA ? { NODE_EXTRA_CA_CERTS: EXTRA_CA } : {};

/** One process: wall seconds (from spawn to exit) and peak RSS (GNU time's %M) when /usr/bin/time is there. */
function run(cmd: string[], env: Record<string, string> = {}): Run {
  const argv = TIME ? [TIME, '-f', '@@rss %M %U %S', ...cmd] : cmd;
  const t0 = performance.now();
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'latin1', env: { ...BASE_ENV, ...env }, maxBuffer: 1 << 26 });
  const seconds = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`${cmd.join(' ')} failed (${r.status}): ${r.stderr.slice(-500)}`);
  const m = /@@rss (\d+) ([\d.]+) ([\d.]+)/.exec(r.stderr);
  return { seconds, cpu_seconds: m ? Number(m[2]) + Number(m[3]) : null, rss_kib: m ? Number(m[1]) : null, stdout: r.stdout };
}

function stats(xs: number[]) {
  const s = xs.slice().sort((a, b) => a - b);
  const r = (x: number) => Number(x.toFixed(4));
  return { median: r(s[Math.floor(s.length / 2)]), min: r(s[0]), n: s.length };
}

/** Runs each variant REPS times, interleaved (A B C A B C ...), after one untimed warm-up each. */
function interleave(variants: Record<string, () => Run>, reps = REPS, before?: () => void) {
  const out: Record<string, { seconds: ReturnType<typeof stats>; cpu_seconds: ReturnType<typeof stats> | null; peak_rss_mib: number | null; runs: number[] }> = {};
  const times: Record<string, number[]> = {};
  const cpu: Record<string, number[]> = {};
  const rss: Record<string, number> = {};
  for (const [k, f] of Object.entries(variants)) {
    before?.();
    f();
    times[k] = [];
    cpu[k] = [];
  }
  for (let i = 0; i < reps; i++) {
    for (const [k, f] of Object.entries(variants)) {
      before?.();
      const r = f();
      times[k].push(r.seconds);
      if (r.cpu_seconds !== null) cpu[k].push(r.cpu_seconds);
      if (r.rss_kib !== null) rss[k] = Math.max(rss[k] ?? 0, r.rss_kib);
    }
  }
  // runs: each round's wall seconds in order (round i of every variant ran back to back)
  for (const k of Object.keys(variants)) out[k] = { seconds: stats(times[k]), cpu_seconds: cpu[k].length ? stats(cpu[k]) : null, peak_rss_mib: rss[k] !== undefined ? Number((rss[k] / 1024).toFixed(1)) : null, runs: times[k].map((t) => Number(t.toFixed(4))) };
  return out;
}

/** Drops a file's pages from the page cache (posix_fadvise DONTNEED through GNU dd). */
function evict(path: string): void {
  spawnSync('dd', [`if=${path}`, 'iflag=nocache', 'count=0', 'status=none']);
}

function randomModel(config: LlamaConfig, seed: number): Llama {
  const m = new Llama(config, createBackend('native'));
  // uniform ±0.04 (std ≈ 0.023) from a fast generator: speed does not depend on the values; norms 1
  const rng = new Rng(seed);
  for (const t of m.layout.tensors) {
    const v = m.params.view(t);
    if (t.shape.length === 1) v.fill(1);
    else for (let i = 0; i < v.length; i++) v[i] = (rng.next() - 0.5) * 0.08;
  }
  return m;
}

function cpuInfo() {
  let flags: string[] = [];
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('flags')) ?? '';
    flags = line.split(':')[1].trim().split(/\s+/).filter((f) => /^(avx2|avx512f|avx512bw|avx512vl|fma|f16c)$/.test(f));
  } catch {
    // not Linux
  }
  return { cpu: cpus()[0]?.model, cpus: cpus().length, flags, node: process.version, load_average: (loadavg()) };
}

function loadavg(): number[] {
  try {
    return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number);
  } catch {
    return [];
  }
}

const report: Record<string, unknown> = {
  bench: 'startup', ...cpuInfo(), reps: REPS, baseline: values.baseline ?? null,
  node_extra_ca_certs: !EXTRA_CA ? 'not set' : values['keep-env'] ? 'set, kept for every run (--keep-env)' : 'set in this environment: removed for the runs, which are also timed with it (*_extra_ca_certs)',
  code_cache: process.env.LLAMA_TS_CODE_CACHE === '0' ? 'off (LLAMA_TS_CODE_CACHE=0)'
    : "on: each variant's untimed first run writes its command's cache; *_no_code_cache variants run as a first run does, without one",
};
const caRuns = Boolean(EXTRA_CA) && !values['keep-env'];
const node = process.execPath;
const one = { LLAMA_TS_THREADS: '1' };

if (only.has('cli')) {
  const v: Record<string, () => Run> = {
    help: () => run([node, CLI, '--help']),
    info: () => run([node, CLI, 'info', '--preset', 'mini-15m']),
    info_no_code_cache: () => run([node, CLI, 'info', '--preset', 'mini-15m'], { LLAMA_TS_CODE_CACHE: '0' }),
    node_empty: () => run([node, '-e', '0']),
  };
  if (caRuns) v.node_empty_extra_ca_certs = () => run([node, '-e', '0'], WITH_CA);
  if (BASE_CLI) {
    v.help_baseline = () => run([node, BASE_CLI, '--help']);
    v.info_baseline = () => run([node, BASE_CLI, 'info', '--preset', 'mini-15m']);
  }
  report.cli = interleave(v);
}

if (only.has('mini')) {
  const path = join(dir, 'mini-15m', 'model.bin');
  if (!existsSync(path)) saveModelAs('llama2c', path, randomModel(makeConfig('mini-15m'), 1), null);
  if (values.tokenizer) copyFileSync(String(values.tokenizer), join(dir, 'mini-15m', 'tokenizer.bin'));
  const tok = join(dir, 'mini-15m', 'tokenizer.bin');
  const gen = (cli: string, n: number, extra: string[] = [], env: Record<string, string> = {}) => () => run([node, cli, 'generate', '--model', path, '--prompt', '', '-n', String(n), '--temperature', '0', '--ignore-eos', ...extra], { ...one, ...env });
  const ttft: Record<string, () => Run> = { mapped: gen(CLI, 1), read: gen(CLI, 1, ['--no-mmap']), mapped_no_code_cache: gen(CLI, 1, [], { LLAMA_TS_CODE_CACHE: '0' }) };
  if (caRuns) ttft.mapped_extra_ca_certs = gen(CLI, 1, [], WITH_CA);
  if (BASE_CLI) ttft.baseline = gen(BASE_CLI, 1);
  const mini: Record<string, unknown> = { file: path, file_mib: Number((statSync(path).size / 2 ** 20).toFixed(1)), tokenizer: values.tokenizer ? 'llama2.c tokenizer.bin' : 'byte vocabulary padded to 32000' };
  mini.first_token_warm = interleave(ttft);
  mini.first_token_cold = interleave(ttft, Math.max(3, Math.floor(REPS / 2)), () => evict(path));
  const e2e: Record<string, () => Run> = { llama_ts: gen(CLI, 240) };
  if (caRuns) e2e.llama_ts_extra_ca_certs = gen(CLI, 240, [], WITH_CA);
  if (values.llama2c) e2e.run_c = () => run([String(values.llama2c), path, '-z', tok, '-t', '0', '-n', '240'], one);
  if (BASE_CLI) e2e.baseline = gen(BASE_CLI, 240);
  const r = interleave(e2e);
  mini.generate_240 = r;
  if (r.run_c) {
    mini.ratio_llama_ts_to_run_c = Number((r.llama_ts.seconds.median / r.run_c.seconds.median).toFixed(3));
    // the median of each round's own ratio (the two ran back to back): less moved by the machine's drift between rounds
    const pairs = r.llama_ts.runs.map((t, i) => t / r.run_c.runs[i]).sort((a, b) => a - b);
    mini.pair_ratio_median_llama_ts_to_run_c = Number(pairs[Math.floor(pairs.length / 2)].toFixed(3));
    if (r.llama_ts_extra_ca_certs) mini.ratio_with_extra_ca_certs_to_run_c = Number((r.llama_ts_extra_ca_certs.seconds.median / r.run_c.seconds.median).toFixed(3));
    if (r.llama_ts.cpu_seconds && r.run_c.cpu_seconds) mini.cpu_ratio_llama_ts_to_run_c = Number((r.llama_ts.cpu_seconds.median / r.run_c.cpu_seconds.median).toFixed(3));
    const ours = gen(CLI, 240)().stdout;
    const theirs = run([String(values.llama2c), path, '-z', tok, '-t', '0', '-n', '240'], one).stdout;
    // run.c drops the leading space of the first piece after BOS and prints only printable bytes: compare the text
    const norm = (t: string) => t.replace(/[^\x20-\x7e\n]/g, '').trim().slice(0, 400);
    mini.same_text_as_run_c = norm(ours) === norm(theirs);
  }
  report.mini_15m = mini;
}

if (only.has('big') && values.big) {
  const big: Record<string, unknown> = {};
  const files: [string, string, LlamaConfig, 'f32' | 'q8_0'][] = [
    ['f32_1gb', join(dir, 'big-f32.gguf'), makeConfig({ dim: 1024, nLayers: 16, nHeads: 16, nKvHeads: 16, vocabSize: 32000, maxSeqLen: 1024, multipleOf: 256 }), 'f32'],
    ['q8_0_110m', join(dir, 'stories110m-q8_0.gguf'), makeConfig({ dim: 768, nLayers: 12, nHeads: 12, nKvHeads: 12, vocabSize: 32000, maxSeqLen: 1024, multipleOf: 32 }), 'q8_0'],
  ];
  for (const [key, path, config, type] of files) {
    if (!existsSync(path)) saveModelAs('gguf', path, randomModel(config, 2), null, { ggufType: type });
    const gen = (extra: string[]) => () => run([node, CLI, 'generate', '--model', path, '--prompt', '', '-n', '1', '--temperature', '0', '--ignore-eos', ...extra], one);
    big[key] = {
      file_mib: Number((statSync(path).size / 2 ** 20).toFixed(1)),
      first_token_warm: interleave({ mapped: gen([]), read: gen(['--no-mmap']) }, Math.max(3, Math.floor(REPS / 2))),
      verbose: spawnSync(node, [CLI, 'generate', '--model', path, '--prompt', '', '-n', '1', '--verbose'], { encoding: 'utf8', env: { ...BASE_ENV, ...one } }).stderr.split('\n').filter((l) => l.startsWith('llama-ts: weights')),
    };
  }
  big.two_processes_1gb = { mapped: await shared(files[0][1], []), read: await shared(files[0][1], ['--no-mmap']) };
  report.big = big;
}

/** Two `chat` processes on one model, each after one completion: Rss and Pss (MiB) of each while both are alive. */
async function shared(path: string, extra: string[]) {
  const procs = [0, 1].map(() => spawn(node, [CLI, 'chat', '--model', path, '-n', '2', '--temperature', '0', ...extra], { env: { ...BASE_ENV, ...one }, stdio: ['pipe', 'pipe', 'inherit'] }));
  await Promise.all(procs.map((p) => new Promise<void>((resolve) => {
    let seen = '';
    p.stdout.on('data', (d: Buffer) => {
      seen += d.toString('latin1');
      if (seen.includes('\n')) resolve();
    });
    p.stdin.write('hi\n');
  })));
  const read = (pid: number) => {
    const t = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(t)?.[1] ?? NaN);
    return { rss_mib: Number((kb('Rss') / 1024).toFixed(1)), pss_mib: Number((kb('Pss') / 1024).toFixed(1)), shared_mib: Number(((kb('Shared_Clean') + kb('Shared_Dirty')) / 1024).toFixed(1)) };
  };
  const r = procs.map((p) => read(p.pid as number));
  for (const p of procs) p.stdin.end();
  await Promise.all(procs.map((p) => new Promise((resolve) => p.on('exit', resolve))));
  return r;
}

if (!values.keep) rmSync(dir, { recursive: true, force: true });
console.log(JSON.stringify(report, null, 1));
