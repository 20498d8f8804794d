/**
 * Byte-level tokenizer: ids 0/1/2 are <unk>/<s>/</s> (LLaMA's special ids) and ids 3..258 are the bytes 0x00..0xFF,
 * the same order as SentencePiece's byte-fallback pieces. Encodes any string losslessly.
 */
import type { Tokenizer } from './types.js';

export const BYTE_OFFSET = 3;

export class ByteTokenizer implements Tokenizer {
  readonly vocabSize = 256 + BYTE_OFFSET;
  readonly bosId = 1;
  readonly eosId = 2;
  private enc = new TextEncoder();
  private dec = new TextDecoder('utf-8', { fatal: false });

  encode(text: string): number[] {
    return Array.from(this.enc.encode(text), (b) => b + BYTE_OFFSET);
  }

  decode(ids: ArrayLike<number>): string {
    const bytes: number[] = [];
    for (let i = 0; i < ids.length; i++) if (ids[i] >= BYTE_OFFSET && ids[i] < this.vocabSize) bytes.push(ids[i] - BYTE_OFFSET);
    return this.dec.decode(Uint8Array.from(bytes));
  }
}
