/**
 * Exact match as the paper scores closed-book QA (Section 3.4, after Roberts et al. 2020 and SQuAD's
 * normalize_answer): the generated answer is cut at the first line break, final dot or comma, then both it and
 * each gold alias are lowercased, stripped of punctuation and of the articles a/an/the, and their whitespace
 * collapsed; any alias that equals the answer counts.
 */

/** The generated text up to the first line break, comma, or dot that ends a sentence (followed by space or the end). */
export function cutAnswer(text: string): string {
  const m = /\n|,|\.(?=\s|$)/.exec(text);
  return m ? text.slice(0, m.index) : text;
}

/** SQuAD's normalize_answer: lowercase, no punctuation, no articles, single spaces. */
export function normalizeAnswer(s: string): string {
  return s
    .toLowerCase()
    .replace(/[\p{P}\p{S}]/gu, '')
    .replace(/\b(a|an|the)\b/g, ' ')
    .split(/\s+/)
    .filter(Boolean)
    .join(' ');
}

/** 1 when the cut, normalised prediction equals any normalised gold alias, else 0. */
export function exactMatch(prediction: string, golds: readonly string[]): number {
  const p = normalizeAnswer(cutAnswer(prediction));
  return golds.some((g) => normalizeAnswer(g) === p) ? 1 : 0;
}
