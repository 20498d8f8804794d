/**
 * SentencePiece-compatible BPE tokenizer.
 *
 *   const sp = SentencePieceModel.load('tokenizer.model');
 *   const ids = sp.encode('Hello world', { bos: true });   // number[]
 *   sp.decode(ids);                                        // 'Hello world'
 *   sp.idToPiece(ids[1]); sp.pieceToId('▁Hello');
 *   await encodeBatch('tokenizer.model', docs);             // worker threads
 *   const proto = trainBpe({ input: text, vocabSize: 4096, byteFallback: true, splitDigits: true });
 */
export { SentencePieceModel, type EncodeOptions } from './model.js';
export { parseModelProto, serializeModelProto, PieceType, ModelType, TRAINER_DEFAULTS, NORMALIZER_DEFAULTS } from './model-proto.js';
export type { ModelProto, Piece, TrainerSpec, NormalizerSpec } from './model-proto.js';
export { Normalizer } from './normalizer.js';
export { trainBpe, nmtNfkcCharsmap, type TrainBpeOptions } from './trainer.js';
export { EncoderPool, encodeBatch, type PoolOptions } from './batch.js';
