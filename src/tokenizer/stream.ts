/**
 * Incremental detokenization for streaming generation: the text of a growing id sequence, one id at a time, without
 * decoding the whole sequence again after every token (which made the generation loop quadratic in its length: on a
 * 240-token generation ~10 ms of ~600 went to re-decoding).
 *
 * After each push, `text` equals `tokenizer.decode(ids)` of every id pushed so far. Each push decodes only a window:
 * the ids from `p` on, where `p` is the start of the last completed step, and keeps the part past the window's
 * already-known prefix `decode(ids[p:r])` (the scheme of Hugging Face's text-generation-inference). Decoding the window
 * from its own start differs from the full decode only in the window's first piece (SentencePiece drops the dummy-prefix
 * space of the first piece that makes text), so that difference cancels in the subtraction. This holds when:
 * - the known part `decode(ids[0:r])` ended on a complete character (it did not end in U+FFFD), so byte pieces after
 *   `r` start a new UTF-8 sequence, split or joined alike;
 * - the window's prefix `decode(ids[p:r])` is not empty (or `p` is 0), so the pieces from `r` on follow text in the
 *   window as they do in the full decode (a control piece alone, which decodes to nothing, does not move `p`).
 * The tests check it against the full decode after every id over random sequences of every tokenizer kind.
 */
import type { Tokenizer } from './types.js';

export class DecodeStream {
  private ids: number[] = [];
  /** decode(ids[0:r]): ends on a complete character. */
  private base = '';
  private r = 0;
  /** Window start: decode(ids[p:r]) is `known`, not empty unless p is 0. */
  private p = 0;
  private known = '';
  /** decode(ids) after the last push. */
  text = '';

  constructor(readonly tokenizer: Tokenizer) {}

  /** Appends one id; returns the text of all ids so far. */
  push(id: number): string {
    const ids = this.ids;
    ids.push(id);
    const win = this.tokenizer.decode(ids.slice(this.p));
    const text = this.base + win.slice(this.known.length);
    this.text = text;
    if (!text.endsWith('\ufffd')) {
      // complete: what we have is the new known part; the window may start at the old r if that makes text
      const tail = this.tokenizer.decode(ids.slice(this.r));
      if (tail.length > 0) {
        this.p = this.r;
        this.known = tail;
      } else {
        this.known = win;
      }
      this.base = text;
      this.r = ids.length;
    }
    return text;
  }
}
