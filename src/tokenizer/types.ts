/** What the training and inference code needs from any tokenizer. */
export interface Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  encode(text: string): number[];
  decode(ids: ArrayLike<number>): string;
}
