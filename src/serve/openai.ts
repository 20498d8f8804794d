/**
 * The OpenAI API's request and response shapes for /v1/completions and /v1/chat/completions: validation of a
 * request body into sequences for the engine (400 with OpenAI's error body `{ error: { message, type, param, code } }`
 * on any mistake), and the response objects and stream chunks.
 *
 * Supported request fields: model, prompt (string, [string], [token ids], [[token ids]]) or messages (roles system,
 * developer, user, assistant; content a string or text parts), max_tokens (chat also max_completion_tokens),
 * temperature (0–2, default 1), top_p (default 1), n, stream, stream_options.include_usage, stop (string or up to
 * 4), seed, user; extensions as in llama.cpp and vLLM: top_k, repetition_penalty, ignore_eos. Fields that would
 * change the answer and are not implemented (logprobs, echo, best_of > 1, suffix, logit_bias, tools, non-zero
 * presence/frequency penalties, non-text response_format) are refused with 400 rather than ignored; other unknown
 * fields are ignored.
 */
import { randomInt } from 'node:crypto';
import type { Tokenizer } from '../tokenizer/types.js';
import type { TokenizerVocab } from '../tokenizer/vocab.js';
import { UserError } from '../util/errors.js';
import { encodeChat, renderChat, turnStop, type ChatMessage, type TemplateName } from './chat-template.js';
import type { SequenceSpec } from './engine.js';

export class ApiError extends Error {
  constructor(readonly status: number, message: string, readonly param: string | null = null, readonly code: string | null = null) {
    super(message);
  }

  get type(): string {
    if (this.status === 429 || this.status === 503) return 'unavailable_error';
    if (this.status >= 500) return 'server_error';
    if (this.status === 404) return 'not_found_error';
    return 'invalid_request_error';
  }

  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

const bad = (message: string, param: string | null = null, code: string | null = null) => new ApiError(400, message, param, code);

/** Most choices (prompts × n) one request may ask for. */
export const MAX_CHOICES = 16;

export interface ModelInfo {
  id: string;
  contextLength: number;
  tokenizer: Tokenizer;
  vocab: TokenizerVocab | null;
  template: TemplateName;
}

export interface ParsedRequest {
  kind: 'completion' | 'chat';
  stream: boolean;
  includeUsage: boolean;
  /** Choices per prompt. */
  n: number;
  /** One spec per choice, choice index = prompt index × n + i (seed + index). */
  sequences: SequenceSpec[];
  /** Prompt tokens, counted once per prompt. */
  promptTokens: number;
}

type Body = Record<string, unknown>;

function present(b: Body, key: string): boolean {
  return b[key] !== undefined && b[key] !== null;
}

function number(b: Body, key: string, dflt: number, check: (v: number) => boolean, what: string, integer = false): number {
  if (!present(b, key)) return dflt;
  const v = b[key];
  if (typeof v !== 'number' || !Number.isFinite(v) || (integer && !Number.isInteger(v))) {
    throw bad(`'${key}' must be ${integer ? 'an integer' : 'a number'}, got ${JSON.stringify(v)}`, key, 'invalid_type');
  }
  if (!check(v)) throw bad(`'${key}' must be ${what}, got ${v}`, key, 'invalid_value');
  return v;
}

function boolean(b: Body, key: string, dflt: boolean): boolean {
  if (!present(b, key)) return dflt;
  if (typeof b[key] !== 'boolean') throw bad(`'${key}' must be a boolean, got ${JSON.stringify(b[key])}`, key, 'invalid_type');
  return b[key] as boolean;
}

function unsupported(b: Body, key: string, isDefault: (v: unknown) => boolean, what: string): void {
  if (present(b, key) && !isDefault(b[key])) throw bad(`'${key}' is not supported by this server (${what})`, key, 'unsupported_parameter');
}

function checkIds(ids: unknown[], vocabSize: number, param: string): number[] {
  if (ids.length === 0) throw bad(`'${param}' is empty`, param);
  for (const t of ids) {
    if (typeof t !== 'number' || !Number.isInteger(t) || t < 0 || t >= vocabSize) throw bad(`'${param}' holds ${JSON.stringify(t)}, not a token id in 0..${vocabSize - 1}`, param, 'invalid_value');
  }
  return ids as number[];
}

/** BOS + the text's tokens (as `generate` does); a tokenizer that cannot encode text is a 400. */
function encodeText(tok: Tokenizer, text: string): number[] {
  try {
    return [tok.bosId, ...tok.encode(text)];
  } catch (e) {
    if (e instanceof UserError) throw bad(e.message, 'prompt');
    throw e;
  }
}

function completionPrompts(b: Body, m: ModelInfo): number[][] {
  const p = b.prompt;
  const V = m.tokenizer.vocabSize;
  if (p === undefined || p === null) throw bad("'prompt' is required", 'prompt', 'missing_required_parameter');
  if (typeof p === 'string') return [encodeText(m.tokenizer, p)];
  if (!Array.isArray(p) || p.length === 0) throw bad("'prompt' must be a string, an array of strings, an array of token ids or an array of token-id arrays", 'prompt', 'invalid_type');
  if (p.every((x) => typeof x === 'string')) return p.map((x) => encodeText(m.tokenizer, x as string));
  if (p.every((x) => typeof x === 'number')) return [checkIds(p, V, 'prompt')];
  if (p.every((x) => Array.isArray(x))) return p.map((x) => checkIds(x as unknown[], V, 'prompt'));
  throw bad("'prompt' must be a string, an array of strings, an array of token ids or an array of token-id arrays", 'prompt', 'invalid_type');
}

function chatMessages(b: Body): ChatMessage[] {
  const ms = b.messages;
  if (ms === undefined || ms === null) throw bad("'messages' is required", 'messages', 'missing_required_parameter');
  if (!Array.isArray(ms) || ms.length === 0) throw bad("'messages' must be a non-empty array", 'messages', 'invalid_type');
  return ms.map((x, i): ChatMessage => {
    const param = `messages[${i}]`;
    if (typeof x !== 'object' || x === null || Array.isArray(x)) throw bad(`'${param}' must be an object`, param, 'invalid_type');
    const { role, content } = x as Body;
    if (role !== 'system' && role !== 'developer' && role !== 'user' && role !== 'assistant') {
      throw bad(`'${param}.role' must be 'system', 'developer', 'user' or 'assistant', got ${JSON.stringify(role)}`, `${param}.role`, 'invalid_value');
    }
    let text: string;
    if (typeof content === 'string') text = content;
    else if (Array.isArray(content)) {
      text = content.map((part, j) => {
        const pp = part as Body;
        if (typeof pp !== 'object' || pp === null || pp.type !== 'text' || typeof pp.text !== 'string') {
          throw bad(`'${param}.content[${j}]' must be a text part ({type: 'text', text}); other parts are not supported`, `${param}.content`, 'invalid_type');
        }
        return pp.text;
      }).join('');
    } else if ((content === null || content === undefined) && role === 'assistant') text = '';
    else throw bad(`'${param}.content' must be a string or an array of text parts`, `${param}.content`, 'invalid_type');
    return { role: role === 'developer' ? 'system' : role, content: text };
  });
}

/**
 * Validates a request body and turns it into sequences. Throws ApiError (400, or 404 for an unknown model).
 * max_tokens is capped by the context: prompt + max_tokens never exceeds it (a prompt that fills it is a 400).
 */
export function parseRequest(kind: 'completion' | 'chat', body: unknown, m: ModelInfo): ParsedRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('the request body must be a JSON object');
  const b = body as Body;
  if (present(b, 'model')) {
    if (typeof b.model !== 'string') throw bad(`'model' must be a string, got ${JSON.stringify(b.model)}`, 'model', 'invalid_type');
    if (b.model !== m.id) throw new ApiError(404, `The model '${b.model}' does not exist (this server serves '${m.id}')`, 'model', 'model_not_found');
  }
  const stream = boolean(b, 'stream', false);
  let includeUsage = false;
  if (present(b, 'stream_options')) {
    const so = b.stream_options;
    if (typeof so !== 'object' || so === null || Array.isArray(so)) throw bad("'stream_options' must be an object", 'stream_options', 'invalid_type');
    if (!stream) throw bad("'stream_options' is only allowed when 'stream' is true", 'stream_options');
    includeUsage = boolean(so as Body, 'include_usage', false);
  }
  const temperature = number(b, 'temperature', 1, (v) => v >= 0 && v <= 2, 'between 0 and 2');
  const topP = number(b, 'top_p', 1, (v) => v > 0 && v <= 1, 'in (0, 1]');
  const topK = number(b, 'top_k', 0, (v) => v >= 0, '>= 0 (0 = off)', true);
  const repetitionPenalty = number(b, 'repetition_penalty', 1, (v) => v > 0, '> 0 (1 = off)');
  const n = number(b, 'n', 1, (v) => v >= 1 && v <= MAX_CHOICES, `between 1 and ${MAX_CHOICES}`, true);
  const seed = number(b, 'seed', randomInt(2 ** 31), (v) => v >= 0 && v <= Number.MAX_SAFE_INTEGER - MAX_CHOICES, 'a non-negative integer', true);
  const ignoreEos = boolean(b, 'ignore_eos', false);
  for (const k of ['presence_penalty', 'frequency_penalty']) {
    number(b, k, 0, (v) => v >= -2 && v <= 2, 'between -2 and 2');
    unsupported(b, k, (v) => v === 0, 'use repetition_penalty');
  }
  unsupported(b, 'logit_bias', (v) => typeof v === 'object' && v !== null && Object.keys(v).length === 0, 'no logit bias');
  unsupported(b, 'tools', (v) => Array.isArray(v) && v.length === 0, 'no tool calls');
  unsupported(b, 'functions', (v) => Array.isArray(v) && v.length === 0, 'no function calls');
  unsupported(b, 'response_format', (v) => typeof v === 'object' && v !== null && (v as Body).type === 'text', "only type 'text'");
  if (kind === 'completion') {
    unsupported(b, 'logprobs', (v) => v === 0, 'no log probabilities');
    unsupported(b, 'echo', (v) => v === false, 'no echo');
    unsupported(b, 'best_of', (v) => v === 1, 'best_of must be 1');
    unsupported(b, 'suffix', (v) => v === '', 'no insertion');
  } else {
    unsupported(b, 'logprobs', (v) => v === false, 'no log probabilities');
    unsupported(b, 'top_logprobs', (v) => v === 0, 'no log probabilities');
  }
  let stop: string[] = [];
  if (present(b, 'stop')) {
    const s = b.stop;
    if (typeof s === 'string') stop = [s];
    else if (Array.isArray(s) && s.length <= 4 && s.every((x) => typeof x === 'string')) stop = s as string[];
    else throw bad("'stop' must be a string or an array of at most 4 strings", 'stop', 'invalid_type');
    stop = stop.filter((x) => x.length > 0);
  }
  const maxKey = kind === 'chat' && present(b, 'max_completion_tokens') ? 'max_completion_tokens' : 'max_tokens';
  const requested = present(b, maxKey) ? number(b, maxKey, 0, (v) => v >= 0, '>= 0', true) : null;

  let prompts: number[][];
  const stopTokens = ignoreEos ? [] : [m.tokenizer.eosId];
  if (kind === 'completion') {
    prompts = completionPrompts(b, m);
  } else {
    const messages = chatMessages(b);
    let ids: number[];
    try {
      ids = encodeChat(renderChat(m.template, messages), m.tokenizer, m.vocab);
    } catch (e) {
      if (e instanceof UserError) throw bad(e.message, 'messages');
      throw e;
    }
    prompts = [ids];
    const turn = turnStop(m.template, m.tokenizer, m.vocab);
    for (const t of turn.tokens) if (!stopTokens.includes(t) && !(ignoreEos && t === m.tokenizer.eosId)) stopTokens.push(t);
    stop = [...stop, ...turn.strings];
  }
  if (prompts.length * n > MAX_CHOICES) throw bad(`${prompts.length} prompts × n = ${n} asks for ${prompts.length * n} choices; at most ${MAX_CHOICES}`, 'n');
  const C = m.contextLength;
  const sequences: SequenceSpec[] = [];
  let promptTokens = 0;
  prompts.forEach((prompt, pi) => {
    if (prompt.length >= C) {
      throw bad(`This model's maximum context length is ${C} tokens, however the prompt${prompts.length > 1 ? ` ${pi}` : ''} is ${prompt.length} tokens (room is needed for at least one new token)`, kind === 'chat' ? 'messages' : 'prompt', 'context_length_exceeded');
    }
    promptTokens += prompt.length;
    // completions default to 16 new tokens as OpenAI's; chat to the rest of the context
    const maxTokens = Math.min(requested ?? (kind === 'completion' ? 16 : C), C - prompt.length);
    for (let i = 0; i < n; i++) {
      sequences.push({ prompt, maxTokens, temperature, topK, topP, seed: seed + pi * n + i, repetitionPenalty, stopTokens, stop });
    }
  });
  return { kind, stream, includeUsage, n, sequences, promptTokens };
}

export type FinishName = 'stop' | 'length';

/** OpenAI's finish_reason: a stop token or string is 'stop', running out of max_tokens or context is 'length'. */
export function finishName(why: string): FinishName {
  return why === 'eos' || why === 'stop' ? 'stop' : 'length';
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export function usage(promptTokens: number, completionTokens: number): Usage {
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
}

interface Head {
  id: string;
  created: number;
  model: string;
}

export function completionResponse(h: Head, texts: string[], finishes: FinishName[], u: Usage) {
  return {
    id: h.id, object: 'text_completion', created: h.created, model: h.model,
    choices: texts.map((text, index) => ({ text, index, logprobs: null, finish_reason: finishes[index] })), usage: u,
  };
}

export function chatResponse(h: Head, texts: string[], finishes: FinishName[], u: Usage) {
  return {
    id: h.id, object: 'chat.completion', created: h.created, model: h.model,
    choices: texts.map((content, index) => ({ index, message: { role: 'assistant', content, refusal: null }, logprobs: null, finish_reason: finishes[index] })),
    usage: u,
  };
}

/** One stream chunk for choice `index`: its new text, or its finish reason (text ''), or (index -1) the usage chunk. */
export function streamChunk(kind: 'completion' | 'chat', h: Head, index: number, text: string, finish: FinishName | null, first: boolean, u?: Usage) {
  const base = { id: h.id, object: kind === 'chat' ? 'chat.completion.chunk' : 'text_completion', created: h.created, model: h.model };
  if (u) return { ...base, choices: [], usage: u };
  if (kind === 'completion') return { ...base, choices: [{ text, index, logprobs: null, finish_reason: finish }] };
  const delta = finish && !text ? {} : first ? { role: 'assistant', content: text } : { content: text };
  return { ...base, choices: [{ index, delta, logprobs: null, finish_reason: finish }] };
}
