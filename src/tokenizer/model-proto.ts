/**
 * SentencePiece's ModelProto (sentencepiece_model.proto) as plain TypeScript objects,
 * read from and written to `.model` files with the hand-written codec in protobuf.ts.
 * Field names are the proto names in camelCase; absent optional fields stay undefined
 * (use TRAINER_DEFAULTS / NORMALIZER_DEFAULTS for SentencePiece's defaults).
 */
import { decodeMessage, encodeMessage, type Schema, type Msg } from './protobuf.js';
import { UserError } from '../util/errors.js';

export enum PieceType {
  NORMAL = 1,
  UNKNOWN = 2,
  CONTROL = 3,
  USER_DEFINED = 4,
  UNUSED = 5,
  BYTE = 6,
}

export enum ModelType {
  UNIGRAM = 1,
  BPE = 2,
  WORD = 3,
  CHAR = 4,
}

export interface Piece {
  piece: string;
  score: number;
  type: PieceType;
  $unknown?: Uint8Array[];
}

export interface TrainerSpec {
  input?: string[];
  inputFormat?: string;
  modelPrefix?: string;
  modelType?: ModelType;
  vocabSize?: number;
  acceptLanguage?: string[];
  selfTestSampleSize?: number;
  enableDifferentialPrivacy?: boolean;
  differentialPrivacyNoiseLevel?: number;
  differentialPrivacyClippingThreshold?: number;
  characterCoverage?: number;
  inputSentenceSize?: number;
  shuffleInputSentence?: boolean;
  miningSentenceSize?: number;
  trainingSentenceSize?: number;
  seedSentencepieceSize?: number;
  shrinkingFactor?: number;
  maxSentenceLength?: number;
  numThreads?: number;
  numSubIterations?: number;
  maxSentencepieceLength?: number;
  splitByUnicodeScript?: boolean;
  splitByNumber?: boolean;
  splitByWhitespace?: boolean;
  treatWhitespaceAsSuffix?: boolean;
  allowWhitespaceOnlyPieces?: boolean;
  splitDigits?: boolean;
  pretokenizationDelimiter?: string;
  controlSymbols?: string[];
  userDefinedSymbols?: string[];
  requiredChars?: string;
  byteFallback?: boolean;
  vocabularyOutputPieceScore?: boolean;
  hardVocabLimit?: boolean;
  useAllVocab?: boolean;
  unkId?: number;
  bosId?: number;
  eosId?: number;
  padId?: number;
  unkPiece?: string;
  bosPiece?: string;
  eosPiece?: string;
  padPiece?: string;
  unkSurface?: string;
  trainExtremelyLargeCorpus?: boolean;
  seedSentencepiecesFile?: string;
  $unknown?: Uint8Array[];
}

export interface NormalizerSpec {
  name?: string;
  precompiledCharsmap?: Uint8Array;
  addDummyPrefix?: boolean;
  removeExtraWhitespaces?: boolean;
  escapeWhitespaces?: boolean;
  normalizationRuleTsv?: string;
  $unknown?: Uint8Array[];
}

export interface ModelProto {
  pieces: Piece[];
  trainerSpec?: TrainerSpec;
  normalizerSpec?: NormalizerSpec;
  selfTestData?: { samples?: { input?: string; expected?: string }[]; $unknown?: Uint8Array[] };
  denormalizerSpec?: NormalizerSpec;
  $unknown?: Uint8Array[];
}

/** SentencePiece's defaults for TrainerSpec fields (sentencepiece_model.proto). */
export const TRAINER_DEFAULTS = {
  modelType: ModelType.UNIGRAM,
  vocabSize: 8000,
  selfTestSampleSize: 0,
  characterCoverage: 0.9995,
  inputSentenceSize: 0,
  shuffleInputSentence: true,
  seedSentencepieceSize: 1000000,
  shrinkingFactor: 0.75,
  maxSentenceLength: 4192,
  numThreads: 16,
  numSubIterations: 2,
  maxSentencepieceLength: 16,
  splitByUnicodeScript: true,
  splitByNumber: true,
  splitByWhitespace: true,
  treatWhitespaceAsSuffix: false,
  allowWhitespaceOnlyPieces: false,
  splitDigits: false,
  byteFallback: false,
  vocabularyOutputPieceScore: true,
  hardVocabLimit: true,
  useAllVocab: false,
  unkId: 0,
  bosId: 1,
  eosId: 2,
  padId: -1,
  unkPiece: '<unk>',
  bosPiece: '<s>',
  eosPiece: '</s>',
  padPiece: '<pad>',
  unkSurface: ' \u2047 ',
} as const;

export const NORMALIZER_DEFAULTS = { addDummyPrefix: true, removeExtraWhitespaces: true, escapeWhitespaces: true } as const;

const TRAINER: Schema = {
  name: 'TrainerSpec',
  fields: [
    { no: 1, name: 'input', kind: 'string', repeated: true },
    { no: 7, name: 'inputFormat', kind: 'string' },
    { no: 2, name: 'modelPrefix', kind: 'string' },
    { no: 3, name: 'modelType', kind: 'enum' },
    { no: 4, name: 'vocabSize', kind: 'int32' },
    { no: 5, name: 'acceptLanguage', kind: 'string', repeated: true },
    { no: 6, name: 'selfTestSampleSize', kind: 'int32' },
    { no: 50, name: 'enableDifferentialPrivacy', kind: 'bool' },
    { no: 51, name: 'differentialPrivacyNoiseLevel', kind: 'float' },
    { no: 52, name: 'differentialPrivacyClippingThreshold', kind: 'uint64' },
    { no: 10, name: 'characterCoverage', kind: 'float' },
    { no: 11, name: 'inputSentenceSize', kind: 'uint64' },
    { no: 19, name: 'shuffleInputSentence', kind: 'bool' },
    { no: 12, name: 'miningSentenceSize', kind: 'int32' },
    { no: 13, name: 'trainingSentenceSize', kind: 'int32' },
    { no: 14, name: 'seedSentencepieceSize', kind: 'int32' },
    { no: 15, name: 'shrinkingFactor', kind: 'float' },
    { no: 18, name: 'maxSentenceLength', kind: 'int32' },
    { no: 16, name: 'numThreads', kind: 'int32' },
    { no: 17, name: 'numSubIterations', kind: 'int32' },
    { no: 20, name: 'maxSentencepieceLength', kind: 'int32' },
    { no: 21, name: 'splitByUnicodeScript', kind: 'bool' },
    { no: 23, name: 'splitByNumber', kind: 'bool' },
    { no: 22, name: 'splitByWhitespace', kind: 'bool' },
    { no: 24, name: 'treatWhitespaceAsSuffix', kind: 'bool' },
    { no: 26, name: 'allowWhitespaceOnlyPieces', kind: 'bool' },
    { no: 25, name: 'splitDigits', kind: 'bool' },
    { no: 53, name: 'pretokenizationDelimiter', kind: 'string' },
    { no: 30, name: 'controlSymbols', kind: 'string', repeated: true },
    { no: 31, name: 'userDefinedSymbols', kind: 'string', repeated: true },
    { no: 36, name: 'requiredChars', kind: 'string' },
    { no: 35, name: 'byteFallback', kind: 'bool' },
    { no: 32, name: 'vocabularyOutputPieceScore', kind: 'bool' },
    { no: 33, name: 'hardVocabLimit', kind: 'bool' },
    { no: 34, name: 'useAllVocab', kind: 'bool' },
    { no: 40, name: 'unkId', kind: 'int32' },
    { no: 41, name: 'bosId', kind: 'int32' },
    { no: 42, name: 'eosId', kind: 'int32' },
    { no: 43, name: 'padId', kind: 'int32' },
    { no: 45, name: 'unkPiece', kind: 'string' },
    { no: 46, name: 'bosPiece', kind: 'string' },
    { no: 47, name: 'eosPiece', kind: 'string' },
    { no: 48, name: 'padPiece', kind: 'string' },
    { no: 44, name: 'unkSurface', kind: 'string' },
    { no: 49, name: 'trainExtremelyLargeCorpus', kind: 'bool' },
    { no: 54, name: 'seedSentencepiecesFile', kind: 'string' },
  ],
};

const NORMALIZER: Schema = {
  name: 'NormalizerSpec',
  fields: [
    { no: 1, name: 'name', kind: 'string' },
    { no: 2, name: 'precompiledCharsmap', kind: 'bytes' },
    { no: 3, name: 'addDummyPrefix', kind: 'bool' },
    { no: 4, name: 'removeExtraWhitespaces', kind: 'bool' },
    { no: 5, name: 'escapeWhitespaces', kind: 'bool' },
    { no: 6, name: 'normalizationRuleTsv', kind: 'string' },
  ],
};

const PIECE: Schema = {
  name: 'SentencePiece',
  fields: [
    { no: 1, name: 'piece', kind: 'string' },
    { no: 2, name: 'score', kind: 'float' },
    { no: 3, name: 'type', kind: 'enum' },
  ],
};

const SAMPLE: Schema = {
  name: 'Sample',
  fields: [
    { no: 1, name: 'input', kind: 'string' },
    { no: 2, name: 'expected', kind: 'string' },
  ],
};
const SELF_TEST: Schema = { name: 'SelfTestData', fields: [{ no: 1, name: 'samples', kind: 'message', repeated: true, schema: SAMPLE }] };

const MODEL: Schema = {
  name: 'ModelProto',
  fields: [
    { no: 1, name: 'pieces', kind: 'message', repeated: true, schema: PIECE },
    { no: 2, name: 'trainerSpec', kind: 'message', schema: TRAINER },
    { no: 3, name: 'normalizerSpec', kind: 'message', schema: NORMALIZER },
    { no: 4, name: 'selfTestData', kind: 'message', schema: SELF_TEST },
    { no: 5, name: 'denormalizerSpec', kind: 'message', schema: NORMALIZER },
  ],
};

/**
 * Parses a serialized ModelProto. Throws UserError on malformed bytes. Does not validate
 * semantics (see SentencePieceModel for that).
 */
export function parseModelProto(buf: Uint8Array, what = '.model file'): ModelProto {
  const m = decodeMessage(buf, MODEL, what) as Msg;
  const pieces = ((m.pieces as Msg[] | undefined) ?? []).map((p) => {
    const out: Piece = { piece: (p.piece as string | undefined) ?? '', score: (p.score as number | undefined) ?? 0, type: (p.type as PieceType | undefined) ?? PieceType.NORMAL };
    if (p.$unknown) out.$unknown = p.$unknown;
    return out;
  });
  return { ...(m as object), pieces } as ModelProto;
}

/** Serializes a ModelProto to the bytes of a `.model` file. */
export function serializeModelProto(m: ModelProto): Uint8Array {
  const pieces = m.pieces.map((p) => {
    const o: Msg = { piece: p.piece, score: p.score };
    if (p.type !== PieceType.NORMAL) o.type = p.type;
    if (p.$unknown) o.$unknown = p.$unknown;
    return o;
  });
  return encodeMessage({ ...(m as unknown as Msg), pieces }, MODEL);
}

export function assertModelBytes(buf: Uint8Array): void {
  if (buf.length === 0) throw new UserError('.model file is empty');
}
