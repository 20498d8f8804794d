/**
 * Extracts the SentencePiece vocabulary of a llama-spm GGUF file (tokenizer.ggml.tokens /
 * scores / token_type) into a SentencePiece `.model` file. Used once to build
 * test/fixtures/tokenizer/llama-spm.model from llama.cpp's models/ggml-vocab-llama-spm.gguf:
 *
 *   node dist/tools/gguf-vocab.js ggml-vocab-llama-spm.gguf test/fixtures/tokenizer/llama-spm.model
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { serializeModelProto, ModelType, type ModelProto, type PieceType } from '../src/tokenizer/model-proto.js';

type GgufValue = number | bigint | boolean | string | GgufValue[];

export function readGgufMetadata(buf: Buffer): Map<string, GgufValue> {
  let pos = 0;
  const need = (n: number) => {
    if (pos + n > buf.length) throw new Error('truncated GGUF');
  };
  const u32 = () => (need(4), (pos += 4), buf.readUInt32LE(pos - 4));
  const u64 = () => (need(8), (pos += 8), Number(buf.readBigUInt64LE(pos - 8)));
  const str = () => {
    const n = u64();
    need(n);
    pos += n;
    return buf.toString('utf8', pos - n, pos);
  };
  const value = (t: number): GgufValue => {
    switch (t) {
      case 0: return need(1), buf.readUInt8(pos++);
      case 1: return need(1), buf.readInt8(pos++);
      case 2: return need(2), (pos += 2), buf.readUInt16LE(pos - 2);
      case 3: return need(2), (pos += 2), buf.readInt16LE(pos - 2);
      case 4: return u32();
      case 5: return need(4), (pos += 4), buf.readInt32LE(pos - 4);
      case 6: return need(4), (pos += 4), buf.readFloatLE(pos - 4);
      case 7: return need(1), buf.readUInt8(pos++) !== 0;
      case 8: return str();
      case 9: {
        const et = u32();
        const n = u64();
        const a: GgufValue[] = [];
        for (let i = 0; i < n; i++) a.push(value(et));
        return a;
      }
      case 10: return need(8), (pos += 8), buf.readBigUInt64LE(pos - 8);
      case 11: return need(8), (pos += 8), buf.readBigInt64LE(pos - 8);
      case 12: return need(8), (pos += 8), buf.readDoubleLE(pos - 8);
      default: throw new Error(`unknown GGUF value type ${t}`);
    }
  };
  if (buf.toString('latin1', 0, 4) !== 'GGUF') throw new Error('not a GGUF file');
  pos = 4;
  const version = u32();
  if (version < 2) throw new Error(`GGUF version ${version} not supported`);
  u64(); // tensor count
  const nkv = u64();
  const kv = new Map<string, GgufValue>();
  for (let i = 0; i < nkv; i++) {
    const k = str();
    kv.set(k, value(u32()));
  }
  return kv;
}

export function ggufToModelProto(kv: Map<string, GgufValue>): ModelProto {
  if (kv.get('tokenizer.ggml.model') !== 'llama') throw new Error(`tokenizer.ggml.model is ${String(kv.get('tokenizer.ggml.model'))}, expected llama (SentencePiece)`);
  const tokens = kv.get('tokenizer.ggml.tokens') as string[];
  const scores = kv.get('tokenizer.ggml.scores') as number[];
  const types = kv.get('tokenizer.ggml.token_type') as number[];
  const pieces = tokens.map((piece, i) => ({ piece, score: scores[i], type: types[i] as PieceType }));
  const idOf = (k: string, d: number) => (kv.has(k) ? Number(kv.get(k)) : d);
  return {
    pieces,
    trainerSpec: {
      modelType: ModelType.BPE,
      vocabSize: pieces.length,
      byteFallback: pieces.some((p) => p.type === 6),
      splitDigits: true,
      unkId: idOf('tokenizer.ggml.unknown_token_id', 0),
      bosId: idOf('tokenizer.ggml.bos_token_id', 1),
      eosId: idOf('tokenizer.ggml.eos_token_id', 2),
      padId: idOf('tokenizer.ggml.padding_token_id', -1),
    },
    normalizerSpec: { name: 'identity', addDummyPrefix: kv.get('tokenizer.ggml.add_space_prefix') !== false, removeExtraWhitespaces: false, escapeWhitespaces: true },
  };
}

if (process.argv[1]?.endsWith('gguf-vocab.js')) {
  const [src, dst] = process.argv.slice(2);
  if (!src || !dst) {
    console.error('usage: node dist/tools/gguf-vocab.js in.gguf out.model');
    process.exit(2);
  }
  const kv = readGgufMetadata(readFileSync(src));
  for (const [k, v] of kv) if (!Array.isArray(v)) console.error(`${k} = ${String(v)}`);
  writeFileSync(dst, serializeModelProto(ggufToModelProto(kv)));
}
