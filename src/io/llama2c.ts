/**
 * llama2.c (Karpathy) version-0 ("legacy") model files and tokenizer.bin.
 *
 * model.bin: 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len) — a negative vocab_size
 * means the classifier is not shared with the embedding — then float32 arrays in this order, each weight in
 * PyTorch [out, in] layout: token_embedding [V, D]; rms_att [L, D]; wq [L, H·hd, D]; wk [L, KV·hd, D];
 * wv [L, KV·hd, D]; wo [L, D, H·hd]; rms_ffn [L, D]; w1 [L, F, D]; w2 [L, D, F]; w3 [L, F, D]; rms_final [D];
 * freq_cis_real [seq, hd/2]; freq_cis_imag [seq, hd/2] (written by export.py, skipped by run.c); wcls [V, D] when
 * unshared. run.c fixes eps = 1e-5 and RoPE θ = 10000 with Meta's adjacent-pair rotation, so no permutation.
 *
 * tokenizer.bin: int32 max_token_length, then per token: float32 score, int32 byte length, bytes. Pieces use a
 * plain space for SentencePiece's '▁', and BOS/EOS are written as "\n<s>\n" / "\n</s>\n" (tokenizer.py's export).
 */
import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { headDim, ffnHiddenDim, type LlamaConfig } from '../model/config.js';
import type { Llama } from '../model/llama.js';
import { TokenType, SPACE, type TokenizerVocab } from '../tokenizer/vocab.js';
import { UserError } from '../util/errors.js';
import { writeFileAtomic } from '../util/fsutil.js';
import { makeRopeTable } from '../kernels/backend.js';
import { configWithHidden, f32view, type ModelSource, type ReadOptions } from './model-common.js';
import { openModelFile } from '../util/mmap.js';

const HEADER_BYTES = 28;

interface Section {
  meta: (l: number) => string;
  perLayer: boolean;
  rows: (c: LlamaConfig) => number;
  cols: (c: LlamaConfig) => number;
}

function sections(): Section[] {
  const D = (c: LlamaConfig) => c.dim;
  const Q = (c: LlamaConfig) => c.nHeads * headDim(c);
  const K = (c: LlamaConfig) => c.nKvHeads * headDim(c);
  const F = (c: LlamaConfig) => ffnHiddenDim(c);
  const one = () => 1;
  const s = (meta: string, rows: Section['rows'], cols: Section['cols']): Section => ({ meta: (l) => `layers.${l}.${meta}`, perLayer: true, rows, cols });
  return [
    { meta: () => 'tok_embeddings.weight', perLayer: false, rows: (c) => c.vocabSize, cols: D },
    s('attention_norm.weight', one, D), s('attention.wq.weight', Q, D), s('attention.wk.weight', K, D), s('attention.wv.weight', K, D),
    s('attention.wo.weight', D, Q), s('ffn_norm.weight', one, D), s('feed_forward.w1.weight', F, D), s('feed_forward.w2.weight', D, F),
    s('feed_forward.w3.weight', F, D), { meta: () => 'norm.weight', perLayer: false, rows: one, cols: D },
  ];
}

export function readLlama2cHeader(buf: Buffer, fileSize: number, what: string): { config: LlamaConfig; shared: boolean; offsets: Map<string, number> } {
  if (fileSize < HEADER_BYTES) throw new UserError(`${what} is truncated (${fileSize} bytes)`);
  const h = Array.from({ length: 7 }, (_, i) => buf.readInt32LE(i * 4));
  const [dim, hidden, nLayers, nHeads, nKvHeads, vocabRaw, seqLen] = h;
  const shared = vocabRaw > 0;
  const vocabSize = Math.abs(vocabRaw);
  for (const [k, v] of [['dim', dim], ['hidden_dim', hidden], ['n_layers', nLayers], ['n_heads', nHeads], ['n_kv_heads', nKvHeads], ['vocab_size', vocabSize], ['seq_len', seqLen]] as const) {
    if (!(v > 0)) throw new UserError(`${what}: header field ${k} = ${v} is not positive (not a llama2.c v0 model?)`);
  }
  if (dim % nHeads !== 0 || nHeads % nKvHeads !== 0) throw new UserError(`${what}: header has dim ${dim}, ${nHeads} heads, ${nKvHeads} kv heads, which do not divide`);
  const config = configWithHidden({ dim, nLayers, nHeads, nKvHeads, vocabSize, maxSeqLen: seqLen, normEps: 1e-5, ropeTheta: 10000 }, hidden, what);
  // the size the header implies, by arithmetic alone: checked before anything is built per layer
  const perLayer = sections().filter((s) => s.perLayer).reduce((a, s) => a + s.rows(config) * s.cols(config) * 4, 0);
  const global = sections().filter((s) => !s.perLayer).reduce((a, s) => a + s.rows(config) * s.cols(config) * 4, 0);
  const expected = HEADER_BYTES + global + perLayer * nLayers + 2 * seqLen * (headDim(config) / 2) * 4 + (shared ? 0 : vocabSize * dim * 4);
  if (expected !== fileSize) throw new UserError(`${what}: header implies ${expected} bytes but the file has ${fileSize} (${expected > fileSize ? 'truncated' : 'extra bytes'}, or not a llama2.c v0 model)`);
  const offsets = new Map<string, number>();
  let off = HEADER_BYTES;
  for (const s of sections()) {
    const n = s.rows(config) * s.cols(config) * 4;
    if (s.perLayer) {
      for (let l = 0; l < nLayers; l++) offsets.set(s.meta(l), off + l * n);
      off += n * nLayers;
    } else {
      offsets.set(s.meta(0), off);
      off += n;
    }
  }
  off += 2 * seqLen * (headDim(config) / 2) * 4; // freq_cis_real, freq_cis_imag
  offsets.set('output.weight', shared ? offsets.get('tok_embeddings.weight')! : off);
  return { config, shared, offsets };
}

/**
 * Reads a llama2.c model's header and returns its tensors: with `map` (and the addon), views of the mapped file
 * (every weight array starts at a multiple of 4 bytes after the 28-byte header, so none is copied); else copies
 * read from the file. The file's size is checked against the header before anything is mapped.
 */
export function readLlama2c(path: string, vocab: TokenizerVocab | null = null, o: ReadOptions = {}): ModelSource {
  const what = `llama2.c model '${path}'`;
  const fd = openSync(path, 'r');
  let size: number;
  const head = Buffer.alloc(HEADER_BYTES);
  try {
    size = fstatSync(fd).size;
    readSync(fd, head, 0, Math.min(HEADER_BYTES, size), 0);
  } finally {
    closeSync(fd);
  }
  const { config, offsets } = readLlama2cHeader(head, size, what);
  if (vocab && vocab.pieces.length !== config.vocabSize) throw new UserError(`${what}: tokenizer has ${vocab.pieces.length} pieces for a vocabulary of ${config.vocabSize}`);
  const sizes = new Map<string, number>();
  for (const s of sections()) for (let l = 0; l < (s.perLayer ? config.nLayers : 1); l++) sizes.set(s.meta(l), s.rows(config) * s.cols(config));
  sizes.set('output.weight', config.vocabSize * config.dim);
  const file = openModelFile(path, { map: Boolean(o.map), expectSize: size, populate: o.map });
  const copied = new Set<string>();
  return {
    config, vocab, description: what, mapped: file.mapped, check: () => file.check(),
    tensor(name: string): Float32Array {
      const off = offsets.get(name);
      const n = sizes.get(name);
      if (off === undefined || n === undefined) throw new UserError(`${what}: no tensor '${name}'`);
      const r = file.f32(off, n);
      if (r.copied) copied.add(name);
      return r.data;
    },
    converted: (name) => (copied.has(name) ? 'read' : null),
  };
}

/** True when the file's header and size are those of a llama2.c v0 model. */
export function looksLikeLlama2c(path: string): boolean {
  try {
    const fd = openSync(path, 'r');
    try {
      const size = fstatSync(fd).size;
      const head = Buffer.alloc(HEADER_BYTES);
      if (size < HEADER_BYTES) return false;
      readSync(fd, head, 0, HEADER_BYTES, 0);
      readLlama2cHeader(head, size, path);
      return true;
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
}

export function writeLlama2c(path: string, model: Llama): void {
  const c = model.config;
  if (c.normEps !== 1e-5 || c.ropeTheta !== 10000) {
    throw new UserError(`llama2.c fixes norm eps 1e-5 and RoPE θ 10000; this model has ${c.normEps} and ${c.ropeTheta}`);
  }
  const header = Buffer.alloc(HEADER_BYTES);
  [c.dim, ffnHiddenDim(c), c.nLayers, c.nHeads, c.nKvHeads, -c.vocabSize, c.maxSeqLen].forEach((v, i) => header.writeInt32LE(v, i * 4));
  const chunks: Uint8Array[] = [header];
  const p = model.params;
  const put = (a: Float32Array) => chunks.push(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  for (const s of sections()) for (let l = 0; l < (s.perLayer ? c.nLayers : 1); l++) put(f32view(p.get(s.meta(l))));
  const rope = makeRopeTable(headDim(c), c.maxSeqLen, c.ropeTheta);
  put(Float32Array.from(rope.cos));
  put(Float32Array.from(rope.sin));
  put(f32view(p.get('output.weight')));
  writeFileAtomic(path, chunks);
}

// ------------------------------------------------------------------ tokenizer.bin

export function writeLlama2cTokenizer(path: string, v: TokenizerVocab): void {
  const pieces = v.pieces.map((p, i) => (i === v.bos ? '\n<s>\n' : i === v.eos ? '\n</s>\n' : p.replace(/\u2581/g, ' ')));
  const bufs = pieces.map((p) => Buffer.from(p, 'utf8'));
  const head = Buffer.alloc(4);
  head.writeInt32LE(Math.max(1, ...bufs.map((b) => b.length)));
  const chunks: Buffer[] = [head];
  bufs.forEach((b, i) => {
    const h = Buffer.alloc(8);
    h.writeFloatLE(v.scores[i], 0);
    h.writeInt32LE(b.length, 4);
    chunks.push(h, b);
  });
  writeFileAtomic(path, chunks);
}

/**
 * Reads tokenizer.bin for a model of `vocabSize` tokens; types are inferred (llama2.c stores none). One pass checks
 * the whole file and reads every score and type; the piece strings are made when first asked for (`piece(i)` one at
 * a time, `pieces` all at once): 32000 strings and the garbage collections they cause are ~10 ms of a start-up
 * that, for a generation from BOS, needs only the pieces it prints (see VocabTokenizer).
 */
export function readLlama2cTokenizer(path: string, vocabSize: number): TokenizerVocab {
  const what = `llama2.c tokenizer '${path}'`;
  const buf = readFileSync(path);
  if (buf.length < 4) throw new UserError(`${what} is truncated`);
  const maxLen = buf.readInt32LE(0);
  if (maxLen <= 0 || maxLen > 1 << 20) throw new UserError(`${what}: bad max_token_length ${maxLen}`);
  const start = new Int32Array(vocabSize + 1); // piece i is bytes [start[i], start[i + 1] - 8)
  const scores: number[] = new Array(vocabSize);
  const types: number[] = new Array(vocabSize).fill(TokenType.NORMAL);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const special: number[] = []; // pieces starting with '\n' or '<': the only ones whose type is not NORMAL
  let off = 4;
  for (let i = 0; i < vocabSize; i++) {
    if (off + 8 > buf.length) throw new UserError(`${what} is truncated: ${i} of ${vocabSize} tokens`);
    scores[i] = dv.getFloat32(off, true);
    const len = dv.getInt32(off + 4, true);
    off += 8;
    if (len < 0 || len > maxLen || off + len > buf.length) throw new UserError(`${what} is corrupt at token ${i} (length ${len})`);
    start[i] = off;
    if (len > 0 && (buf[off] === 0x0a || buf[off] === 0x3c)) special.push(i);
    off += len;
  }
  start[vocabSize] = off + 8;
  const made: (string | undefined)[] = new Array(vocabSize);
  /** The piece's text: '▁' for a space; BOS and EOS, written as "\n<s>\n" and "\n</s>\n", trimmed. */
  const piece = (i: number): string => {
    let p = made[i];
    if (p !== undefined) return p;
    p = buf.toString('utf8', start[i], start[i + 1] - 8);
    if (types[i] === TokenType.CONTROL) p = p.trim();
    else if (types[i] === TokenType.NORMAL && p.includes(' ')) p = p.replaceAll(' ', SPACE);
    made[i] = p;
    return p;
  };
  let bos = -1;
  let eos = -1;
  let unk = -1;
  for (const i of special) {
    const p = buf.toString('utf8', start[i], start[i + 1] - 8);
    let type: number = TokenType.NORMAL;
    if (p === '\n<s>\n' || p === '\n</s>\n' || p === '<s>' || p === '</s>') type = TokenType.CONTROL;
    else if (p === '<unk>') type = TokenType.UNKNOWN;
    else if (/^<0x[0-9A-F]{2}>$/.test(p)) type = TokenType.BYTE;
    else if (/^<unused\d+>$/.test(p)) type = TokenType.UNUSED;
    types[i] = type;
    const t = piece(i);
    if (t === '<s>' && bos < 0) bos = i;
    else if (t === '</s>' && eos < 0) eos = i;
    else if (t === '<unk>' && unk < 0) unk = i;
  }
  let all: string[] | null = null;
  const v = { scores, types, bos: bos >= 0 ? bos : 1, eos: eos >= 0 ? eos : 2, unk: unk >= 0 ? unk : 0 } as TokenizerVocab;
  Object.defineProperty(v, 'pieces', {
    enumerable: true,
    get: () => (all ??= Array.from({ length: vocabSize }, (_, i) => piece(i))),
  });
  Object.defineProperty(v, 'piece', { enumerable: false, value: piece });
  return v;
}
