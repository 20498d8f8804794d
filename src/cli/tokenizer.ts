/**
 * `llama-ts tokenizer train|encode|decode|inspect`, after spm_train / spm_encode / spm_decode:
 *   llama-ts tokenizer train --input=a.txt,b.txt --model_prefix=m --vocab_size=4096 --split_digits=true --byte_fallback=true
 *   llama-ts tokenizer encode --model m.model [--input f] [--output f] [--output_format id|piece] [--extra_options bos:eos]
 *   llama-ts tokenizer decode --model m.model [--input f] [--input_format id|piece]
 *   llama-ts tokenizer inspect --model m.model [--pieces N] [--json]
 */
import { closeSync, createReadStream, createWriteStream, openSync, readSync, renameSync, rmSync } from 'node:fs';
import { basename } from 'node:path';
import { writeFileAtomic } from '../util/fsutil.js';
import type { Command } from './main.js';
import { parse, int, num, str, type Values, type Options } from './args.js';
import { UserError, quote } from '../util/errors.js';
import { SentencePieceModel, trainBpe, serializeModelProto, PieceType, ModelType } from '../tokenizer/index.js';

const USAGE = `usage: llama-ts tokenizer <train|encode|decode|inspect> [options]

  train   --input=FILE[,FILE...] (--model_prefix=P | --model=OUT.model) --vocab_size=N
          [--character_coverage=0.9995] [--split_digits=false] [--byte_fallback=false]
          [--max_sentencepiece_length=16] [--allow_whitespace_only_pieces=false]
          [--user_defined_symbols=a,b] [--control_symbols=a,b] [--input_sentence_size=0]
          [--shuffle_input_sentence=true] [--max_sentence_length=4192] [--seed=N]
          [--normalization_rule_name=nmt_nfkc|identity] [--add_dummy_prefix=true]
          [--remove_extra_whitespaces=true] [--split_by_whitespace=true] [--split_by_unicode_script=true]
          [--split_by_number=true] [--treat_whitespace_as_suffix=false] [--unk_id=0] [--bos_id=1]
          [--eos_id=2] [--pad_id=-1] [--model_type=bpe] [--quiet]
          writes P.model and P.vocab (piece<TAB>score per line)
  encode  --model=M [--input=FILE] [--output=FILE] [--output_format=id|piece] [--extra_options=bos:eos]
          one line of ids (or pieces) per input line; stdin/stdout by default
  decode  --model=M [--input=FILE] [--output=FILE] [--input_format=id|piece]
  inspect --model=M [--pieces=N] [--json]`;

function bool(v: Values[string], name: string, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (v === true || v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw new UserError(`--${name} expects true or false, got '${String(v)}'`);
}

function list(v: Values[string]): string[] {
  const s = str(v);
  return s ? s.split(',').filter((x) => x.length > 0) : [];
}

/** Lines of a text file, read synchronously in 4 MB chunks (so huge corpora can be sampled in bounded memory). */
function* fileLines(path: string): Generator<string> {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(1 << 22);
    const dec = new TextDecoder('utf-8', { ignoreBOM: true });
    let rest = '';
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      const text = rest + (n > 0 ? dec.decode(buf.subarray(0, n), { stream: true }) : dec.decode());
      const parts = text.split('\n');
      rest = n > 0 ? parts.pop()! : '';
      yield* parts;
      if (n <= 0) break;
    }
  } finally {
    closeSync(fd);
  }
}

/** Lines of a file or stdin as raw bytes (without the '\n'), streamed. */
async function* byteLines(path: string | undefined): AsyncGenerator<Uint8Array> {
  const stream = path ? createReadStream(path) : process.stdin;
  let rest: Buffer = Buffer.alloc(0);
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    let buf = rest.length ? Buffer.concat([rest, chunk]) : chunk;
    let s = 0;
    for (let i = buf.indexOf(10); i >= 0; i = buf.indexOf(10, s)) {
      yield buf.subarray(s, i);
      s = i + 1;
    }
    rest = buf.subarray(s);
    buf = rest;
  }
  if (rest.length) yield rest;
}

/** Lines to stdout, or to a file written as a temporary sibling and renamed over it by close() (discard() on failure). */
class Out {
  private parts: string[] = [];
  private size = 0;
  private stream: NodeJS.WritableStream;
  private readonly tmp: string | null;
  constructor(private readonly path: string | undefined) {
    this.tmp = path ? `${path}.tmp-${process.pid}` : null;
    this.stream = this.tmp ? createWriteStream(this.tmp) : process.stdout;
  }
  /** Runs `body` writing to this output, then closes it; on an error the temporary file is removed. */
  async run(body: () => Promise<void>): Promise<void> {
    try {
      await body();
      await this.close();
    } catch (e) {
      if (this.tmp) {
        (this.stream as NodeJS.WritableStream & { destroy(): void }).destroy();
        rmSync(this.tmp, { force: true });
      }
      throw e;
    }
  }
  async line(s: string) {
    this.parts.push(s, '\n');
    this.size += s.length + 1;
    if (this.size > 1 << 16) await this.flush();
  }
  async flush() {
    if (!this.parts.length) return;
    const data = this.parts.join('');
    this.parts = [];
    this.size = 0;
    if (!this.stream.write(data)) await new Promise<void>((r) => this.stream.once('drain', () => r()));
  }
  async close() {
    await this.flush();
    if (this.tmp && this.path) {
      const s = this.stream as NodeJS.WritableStream;
      await new Promise<void>((res, rej) => {
        s.once('error', rej);
        s.end(() => res());
      });
      renameSync(this.tmp, this.path);
    }
  }
}

const trainOptions: Options = {
  input: { type: 'string' },
  model_prefix: { type: 'string' },
  model: { type: 'string' },
  model_type: { type: 'string' },
  vocab_size: { type: 'string' },
  character_coverage: { type: 'string' },
  split_digits: { type: 'string' },
  byte_fallback: { type: 'string' },
  max_sentencepiece_length: { type: 'string' },
  allow_whitespace_only_pieces: { type: 'string' },
  user_defined_symbols: { type: 'string' },
  control_symbols: { type: 'string' },
  input_sentence_size: { type: 'string' },
  shuffle_input_sentence: { type: 'string' },
  max_sentence_length: { type: 'string' },
  seed: { type: 'string' },
  normalization_rule_name: { type: 'string' },
  add_dummy_prefix: { type: 'string' },
  remove_extra_whitespaces: { type: 'string' },
  split_by_whitespace: { type: 'string' },
  split_by_unicode_script: { type: 'string' },
  split_by_number: { type: 'string' },
  treat_whitespace_as_suffix: { type: 'string' },
  unk_id: { type: 'string' },
  bos_id: { type: 'string' },
  eos_id: { type: 'string' },
  pad_id: { type: 'string' },
  num_threads: { type: 'string' }, // accepted for spm_train compatibility; training is single-threaded
  quiet: { type: 'boolean' },
};

function intAllowNeg(v: Values[string], name: string, dflt: number): number {
  const n = num(v, name, dflt);
  if (!Number.isInteger(n)) throw new UserError(`--${name} expects an integer, got '${String(v)}'`);
  return n;
}

async function train(argv: string[]): Promise<number> {
  const { values: v } = parse(argv, trainOptions);
  if (v.help) return console.log(USAGE), 0;
  const inputs = list(v.input);
  if (!inputs.length) throw new UserError('train needs --input=FILE[,FILE...]');
  const prefix = str(v.model_prefix);
  if (prefix !== undefined && (prefix === '' || /[/\\]$/.test(prefix) || basename(prefix) === '.' || basename(prefix) === '..')) {
    throw new UserError(`--model_prefix must name the files to write (P gives P.model and P.vocab), got ${quote(prefix)}: a directory needs a file name after it, e.g. ${quote(`${prefix.replace(/[/\\]+$/, '')}/m`)}`);
  }
  const modelPath = str(v.model) ?? (prefix ? `${prefix}.model` : undefined);
  if (!modelPath) throw new UserError('train needs --model_prefix=P (or --model=OUT.model)');
  if (/[/\\]$/.test(modelPath) || basename(modelPath) === '.model') throw new UserError(`--model must name a file, got ${quote(modelPath)}`);
  const type = (str(v.model_type) ?? 'bpe').toLowerCase();
  if (type !== 'bpe') throw new UserError(`--model_type=${type} is not supported (only bpe)`);
  if (v.vocab_size === undefined) throw new UserError('train needs --vocab_size=N');
  const rule = str(v.normalization_rule_name) ?? 'nmt_nfkc';
  if (rule !== 'nmt_nfkc' && rule !== 'identity') throw new UserError(`--normalization_rule_name=${rule} is not supported (nmt_nfkc or identity)`);
  for (const f of inputs) {
    try {
      closeSync(openSync(f, 'r'));
    } catch (e) {
      throw new UserError(`cannot read input '${f}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  const lines = function* () {
    for (const f of inputs) yield* fileLines(f);
  };
  const quiet = !!v.quiet;
  const t0 = performance.now();
  const proto = trainBpe({
    input: lines(),
    inputNames: inputs,
    vocabSize: int(v.vocab_size, 'vocab_size', 8000, 1),
    characterCoverage: num(v.character_coverage, 'character_coverage', 0.9995),
    splitDigits: bool(v.split_digits, 'split_digits', false),
    byteFallback: bool(v.byte_fallback, 'byte_fallback', false),
    maxPieceLength: int(v.max_sentencepiece_length, 'max_sentencepiece_length', 16, 1),
    allowWhitespaceOnlyPieces: bool(v.allow_whitespace_only_pieces, 'allow_whitespace_only_pieces', false),
    userDefinedSymbols: list(v.user_defined_symbols),
    controlSymbols: list(v.control_symbols),
    inputSentenceSize: int(v.input_sentence_size, 'input_sentence_size', 0),
    shuffleInputSentence: bool(v.shuffle_input_sentence, 'shuffle_input_sentence', true),
    maxSentenceLength: int(v.max_sentence_length, 'max_sentence_length', 4192, 1),
    seed: int(v.seed, 'seed', 12345678),
    normalization: rule,
    addDummyPrefix: bool(v.add_dummy_prefix, 'add_dummy_prefix', true),
    removeExtraWhitespaces: bool(v.remove_extra_whitespaces, 'remove_extra_whitespaces', true),
    splitByWhitespace: bool(v.split_by_whitespace, 'split_by_whitespace', true),
    splitByUnicodeScript: bool(v.split_by_unicode_script, 'split_by_unicode_script', true),
    splitByNumber: bool(v.split_by_number, 'split_by_number', true),
    treatWhitespaceAsSuffix: bool(v.treat_whitespace_as_suffix, 'treat_whitespace_as_suffix', false),
    unkId: intAllowNeg(v.unk_id, 'unk_id', 0),
    bosId: intAllowNeg(v.bos_id, 'bos_id', 1),
    eosId: intAllowNeg(v.eos_id, 'eos_id', 2),
    padId: intAllowNeg(v.pad_id, 'pad_id', -1),
    log: quiet ? undefined : (m) => console.error(`tokenizer train: ${m}`),
  });
  // each file is written to a temporary sibling and renamed: a full disk never truncates a previous good model
  writeFileAtomic(modelPath, [serializeModelProto(proto)]);
  const vocabPath = modelPath.replace(/\.model$/, '') + '.vocab';
  writeFileAtomic(vocabPath, [proto.pieces.map((p) => `${p.piece}\t${p.score}\n`).join('')]);
  if (!quiet) console.error(`tokenizer train: wrote ${modelPath} and ${vocabPath} (${proto.pieces.length} pieces) in ${((performance.now() - t0) / 1000).toFixed(2)} s`);
  return 0;
}

async function encode(argv: string[]): Promise<number> {
  const { values: v } = parse(argv, {
    model: { type: 'string' },
    input: { type: 'string' },
    output: { type: 'string' },
    output_format: { type: 'string' },
    format: { type: 'string' },
    extra_options: { type: 'string' },
    bos: { type: 'boolean' },
    eos: { type: 'boolean' },
  });
  if (v.help) return console.log(USAGE), 0;
  const model = loadModel(v);
  const format = str(v.output_format) ?? str(v.format) ?? 'id';
  if (format !== 'id' && format !== 'piece' && format !== 'pieces') throw new UserError(`--output_format must be id or piece, got '${format}'`);
  const extra = list(str(v.extra_options)?.replaceAll(':', ','));
  for (const x of extra) if (x !== 'bos' && x !== 'eos') throw new UserError(`--extra_options: unsupported option '${x}' (bos, eos)`);
  const bos = !!v.bos || extra.includes('bos');
  const eos = !!v.eos || extra.includes('eos');
  const out = new Out(str(v.output));
  await out.run(async () => {
    for await (const line of byteLines(str(v.input))) {
      if (format === 'id') await out.line(model.encode(line, { bos, eos }).join(' '));
      else {
        const p = model.encodeAsPieces(line);
        if (bos) p.unshift(model.idToPiece(model.bosId));
        if (eos) p.push(model.idToPiece(model.eosId));
        await out.line(p.join(' '));
      }
    }
  });
  return 0;
}

async function decode(argv: string[]): Promise<number> {
  const { values: v } = parse(argv, { model: { type: 'string' }, input: { type: 'string' }, output: { type: 'string' }, input_format: { type: 'string' }, format: { type: 'string' } });
  if (v.help) return console.log(USAGE), 0;
  const model = loadModel(v);
  const format = str(v.input_format) ?? str(v.format) ?? 'id';
  if (format !== 'id' && format !== 'piece' && format !== 'pieces') throw new UserError(`--input_format must be id or piece, got '${format}'`);
  const out = new Out(str(v.output));
  const dec = new TextDecoder('utf-8', { ignoreBOM: true });
  let n = 0;
  await out.run(async () => {
    for await (const raw of byteLines(str(v.input))) {
      n++;
      const toks = dec.decode(raw).trim().split(/\s+/).filter(Boolean);
      let ids: number[];
      if (format === 'id') {
        ids = toks.map((t) => {
          if (!/^\d+$/.test(t) || Number(t) >= model.vocabSize) throw new UserError(`line ${n}: invalid id '${t}' (vocabulary has ${model.vocabSize} pieces)`);
          return Number(t);
        });
      } else ids = toks.map((t) => model.pieceToId(t));
      await out.line(model.decode(ids));
    }
  });
  return 0;
}

function loadModel(v: Values): SentencePieceModel {
  const path = str(v.model);
  if (!path) throw new UserError('--model=FILE is required');
  return SentencePieceModel.load(path);
}

async function inspect(argv: string[]): Promise<number> {
  const { values: v } = parse(argv, { model: { type: 'string' }, pieces: { type: 'string' }, json: { type: 'boolean' } });
  if (v.help) return console.log(USAGE), 0;
  const m = loadModel(v);
  const counts: Record<string, number> = {};
  for (let i = 0; i < m.vocabSize; i++) {
    const t = PieceType[m.pieceType(i)];
    counts[t] = (counts[t] ?? 0) + 1;
  }
  const ts = m.proto.trainerSpec ?? {};
  const ns = m.proto.normalizerSpec ?? {};
  const nPieces = int(v.pieces, 'pieces', 20);
  const info = {
    vocabSize: m.vocabSize,
    modelType: ModelType[ts.modelType ?? ModelType.UNIGRAM],
    pieceTypes: counts,
    unkId: m.unkId,
    bosId: m.bosId,
    eosId: m.eosId,
    padId: m.padId,
    byteFallback: m.byteFallback,
    splitDigits: ts.splitDigits ?? false,
    normalizer: { name: ns.name ?? '', charsmapBytes: ns.precompiledCharsmap?.length ?? 0, addDummyPrefix: m.normalizer.addDummyPrefix, removeExtraWhitespaces: m.normalizer.removeExtraWhitespaces, escapeWhitespaces: m.normalizer.escapeWhitespaces },
    trainerSpec: Object.fromEntries(Object.entries(ts).filter(([k]) => k !== '$unknown')),
    pieces: m.proto.pieces.slice(0, nPieces).map((p, id) => ({ id, piece: p.piece, score: p.score, type: PieceType[p.type] })),
  };
  if (v.json) console.log(JSON.stringify(info));
  else {
    console.log(`vocab size   ${info.vocabSize} (${Object.entries(counts).map(([k, n]) => `${n} ${k.toLowerCase()}`).join(', ')})`);
    console.log(`model type   ${info.modelType}`);
    console.log(`special ids  unk ${info.unkId}, bos ${info.bosId}, eos ${info.eosId}, pad ${info.padId}`);
    console.log(`options      byte_fallback ${info.byteFallback}, split_digits ${info.splitDigits}`);
    console.log(`normalizer   ${JSON.stringify(info.normalizer)}`);
    for (const p of info.pieces) console.log(`${String(p.id).padStart(6)}  ${JSON.stringify(p.piece).padEnd(20)} ${String(p.score).padStart(10)}  ${p.type}`);
  }
  return 0;
}

export const command: Command = {
  async run(argv) {
    const [sub, ...rest] = argv;
    switch (sub) {
      case 'train':
        return train(rest);
      case 'encode':
        return encode(rest);
      case 'decode':
        return decode(rest);
      case 'inspect':
        return inspect(rest);
      case undefined:
      case '--help':
      case '-h':
      case 'help':
        console.log(USAGE);
        return sub ? 0 : 1;
      default:
        throw new UserError(`unknown tokenizer subcommand '${sub}' (train, encode, decode, inspect)`);
    }
  },
};
