/**
 * The OpenAI-compatible server: answers equal `generate` with the same seed (non-streaming and streaming, while
 * batched with other requests), the official `openai` client against it, request validation, client aborts,
 * the bounded queue, graceful shutdown, chat templates, and the `serve` command end to end. Tiny models, loopback.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { makeConfig } from '../src/model/config.js';
import type { Llama } from '../src/model/llama.js';
import { Decoder, generate, type GenerateOptions, type StepItem } from '../src/inference/generate.js';
import { ByteTokenizer } from '../src/tokenizer/bytes.js';
import { byteVocab, TokenType } from '../src/tokenizer/vocab.js';
import { LlamaServer } from '../src/serve/server.js';
import { detectTemplate, encodeChat, renderChat, turnStop, type ChatMessage, type TemplateName } from '../src/serve/chat-template.js';
import { writeLlamaGguf } from '../src/io/gguf-llama.js';
import { readGguf, writeGguf, GgufValueType as T, type GgufKv, type GgufValue } from '../src/io/gguf.js';
import { loadAnyModel } from '../src/io/formats.js';
import { createRefBackend } from '../src/kernels/ref.js';
import { peakedModel } from './helpers/models.js';
import { bin, root, failsWithOneLine } from './helpers/cli.js';

const config = makeConfig({ dim: 32, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 259, multipleOf: 16, maxSeqLen: 96 });
const longConfig = makeConfig({ ...config, maxSeqLen: 512 });
const tok = new ByteTokenizer();

/** A decoder that spends `ms` per step, so that a stream runs long enough to be aborted or shut down mid-way. */
class SlowDecoder extends Decoder {
  constructor(model: Llama, readonly ms: number) {
    super(model);
  }

  override step(items: StepItem[], logitsFor: 'last' | 'all' = 'last', reuse = false) {
    const end = performance.now() + this.ms;
    while (performance.now() < end) { /* spin: the step is synchronous like a real one */ }
    return super.step(items, logitsFor, reuse);
  }
}

async function start(model: Llama, o: { slots?: number; queue?: number; slowMs?: number; template?: TemplateName } = {}) {
  const decoder = o.slowMs ? new SlowDecoder(model, o.slowMs) : new Decoder(model);
  const server = new LlamaServer({
    decoder, slots: o.slots ?? 8, queue: o.queue ?? 16,
    model: { id: 'tiny', contextLength: model.config.maxSeqLen, tokenizer: tok, vocab: null, template: o.template ?? 'chatml' },
  });
  const addr = await server.listen(0, '127.0.0.1');
  return { server, url: `http://127.0.0.1:${addr.port}` };
}

function post(url: string, path: string, body: unknown, signal?: AbortSignal): Promise<Response> {
  return fetch(url + path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body), signal });
}

interface Streamed {
  texts: string[];
  finishes: (string | null)[];
  events: Record<string, unknown>[];
  done: boolean;
}

/** Reads a whole server-sent-event stream: each choice's concatenated text and finish reason. */
async function readStream(res: Response): Promise<Streamed> {
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
  const raw = await res.text();
  const out: Streamed = { texts: [], finishes: [], events: [], done: false };
  for (const block of raw.split('\n\n')) {
    if (!block.trim()) continue;
    assert.ok(block.startsWith('data: '), block);
    const data = block.slice(6);
    if (data === '[DONE]') {
      out.done = true;
      continue;
    }
    assert.equal(out.done, false, 'nothing after [DONE]');
    const ev = JSON.parse(data) as Record<string, unknown>;
    out.events.push(ev);
    for (const c of (ev.choices ?? []) as { index: number; text?: string; delta?: { content?: string }; finish_reason: string | null }[]) {
      out.texts[c.index] = (out.texts[c.index] ?? '') + (c.text ?? c.delta?.content ?? '');
      if (c.finish_reason) out.finishes[c.index] = c.finish_reason;
    }
  }
  return out;
}

function expected(model: Llama, prompts: number[][], o: Partial<GenerateOptions>) {
  return generate(new Decoder(model), prompts, { maxTokens: 16, temperature: 1, topK: 0, topP: 1, seed: 0, tokenizer: tok, stopTokens: [tok.eosId], repetitionWindow: 64, ...o });
}

const finishOf = (f: string) => (f === 'eos' || f === 'stop' ? 'stop' : 'length');

test('completions: non-streaming and streaming answers, decoded together in one batch, equal generate with the same seed', async () => {
  const model = peakedModel(config);
  const { server, url } = await start(model);
  try {
    const cases = [
      { prompt: 'Once upon a time', temperature: 0.8, top_p: 0.95, seed: 11, max_tokens: 20 },
      { prompt: 'The cat', temperature: 1.2, seed: 5, max_tokens: 24, stop: ['e', 'zz'] },
      { prompt: 'x', temperature: 0, max_tokens: 30 },
      { prompt: 'ab', temperature: 0.9, top_k: 5, repetition_penalty: 1.3, seed: 2, max_tokens: 25 },
      { prompt: ['one', 'two'], temperature: 1, seed: 7, n: 2, max_tokens: 12 },
    ];
    // every case twice (JSON and stream), all in flight at once: 12 sequences over 8 slots, so some wait and join later
    const all = await Promise.all(cases.flatMap((c) => [
      post(url, '/v1/completions', { model: 'tiny', ...c }).then((r) => r.json()),
      post(url, '/v1/completions', { ...c, stream: true, stream_options: { include_usage: true } }).then(readStream),
    ]));
    for (const [k, c] of cases.entries()) {
      const prompts = (Array.isArray(c.prompt) ? c.prompt : [c.prompt]).map((p) => [tok.bosId, ...tok.encode(p)]);
      const n = c.n ?? 1;
      const exp = await expected(model, prompts.flatMap((p) => Array(n).fill(p)), {
        maxTokens: c.max_tokens, temperature: c.temperature, topP: c.top_p ?? 1, topK: c.top_k ?? 0, seed: c.seed ?? 0,
        repetitionPenalty: c.repetition_penalty, stop: c.stop,
      });
      const json = all[2 * k] as { object: string; choices: { text: string; index: number; finish_reason: string }[]; usage: { prompt_tokens: number; completion_tokens: number } };
      const stream = all[2 * k + 1] as Streamed;
      assert.equal(json.object, 'text_completion');
      assert.deepEqual(json.choices.map((x) => x.text), exp.map((e) => e.text), `case ${k} (JSON)`);
      assert.deepEqual(json.choices.map((x) => x.finish_reason), exp.map((e) => finishOf(e.finish)));
      assert.deepEqual(stream.texts, exp.map((e) => e.text), `case ${k} (stream)`);
      assert.deepEqual(stream.finishes, exp.map((e) => finishOf(e.finish)));
      assert.ok(stream.done);
      assert.equal(json.usage.prompt_tokens, prompts.reduce((a, p) => a + p.length, 0));
      assert.equal(json.usage.completion_tokens, exp.reduce((a, e) => a + e.tokens.length, 0));
      assert.deepEqual((stream.events.at(-1) as { usage: unknown }).usage, json.usage);
    }
    const s = server.engine.stats();
    assert.ok(s.steps < s.decodedTokens, `sequences shared steps (${s.steps} steps for ${s.decodedTokens} decoded tokens)`);
    assert.equal(s.busy, 0);
    // max_tokens is capped by the context: 3 prompt tokens leave 93 of 96
    const capped = await (await post(url, '/v1/completions', { prompt: 'ab', max_tokens: 1000, temperature: 0, ignore_eos: true })).json() as { choices: { finish_reason: string }[]; usage: { completion_tokens: number } };
    assert.equal(capped.usage.completion_tokens, config.maxSeqLen - 3);
    assert.equal(capped.choices[0].finish_reason, 'length');
  } finally {
    await server.shutdown(1000);
  }
});

test('chat completions: the template renders the messages; answers equal generate on the rendered prompt', async () => {
  const model = peakedModel(longConfig);
  const { server, url } = await start(model);
  try {
    const messages: ChatMessage[] = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }];
    const ids = encodeChat(renderChat('chatml', messages), tok, null);
    assert.equal(tok.decode(ids.slice(1)), '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n');
    const body = { messages: [{ role: 'developer', content: 'Be brief.' }, { role: 'user', content: [{ type: 'text', text: 'Hi' }] }], seed: 4, max_completion_tokens: 10, temperature: 0.7 };
    const [json, stream] = await Promise.all([
      post(url, '/v1/chat/completions', body).then((r) => r.json()) as Promise<{ object: string; choices: { message: { role: string; content: string }; finish_reason: string }[] }>,
      post(url, '/v1/chat/completions', { ...body, stream: true }).then(readStream),
    ]);
    const [exp] = await expected(model, [ids], { maxTokens: 10, temperature: 0.7, seed: 4, stop: ['<|im_end|>'] });
    assert.equal(json.object, 'chat.completion');
    assert.equal(json.choices[0].message.role, 'assistant');
    assert.equal(json.choices[0].message.content, exp.text);
    assert.equal(stream.texts[0], exp.text);
    assert.equal((stream.events[0] as { choices: { delta: { role?: string } }[] }).choices[0].delta.role, 'assistant');
    assert.equal(stream.events[0].object, 'chat.completion.chunk');
  } finally {
    await server.shutdown(1000);
  }
});

test('the official openai client: completions, chat (streaming and not), models; its errors for a bad request and an unknown model', async () => {
  const model = peakedModel(config);
  const { server, url } = await start(model);
  try {
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 20_000 });
    const models = await client.models.list();
    assert.deepEqual(models.data.map((m) => m.id), ['tiny']);
    const [exp] = await expected(model, [[tok.bosId, ...tok.encode('Hello')]], { maxTokens: 8, temperature: 0.5, seed: 9 });
    const c = await client.completions.create({ model: 'tiny', prompt: 'Hello', max_tokens: 8, temperature: 0.5, seed: 9 });
    assert.equal(c.choices[0].text, exp.text);
    let streamed = '';
    for await (const chunk of await client.completions.create({ model: 'tiny', prompt: 'Hello', max_tokens: 8, temperature: 0.5, seed: 9, stream: true })) {
      streamed += chunk.choices[0]?.text ?? '';
    }
    assert.equal(streamed, exp.text);
    const chat = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 6, seed: 1 });
    assert.equal(chat.choices[0].message.role, 'assistant');
    let chatStreamed = '';
    let finish: string | null = null;
    for await (const chunk of await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 6, seed: 1, stream: true })) {
      chatStreamed += chunk.choices[0]?.delta?.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(chatStreamed, chat.choices[0].message.content);
    assert.equal(finish, chat.choices[0].finish_reason);
    await assert.rejects(client.completions.create({ model: 'tiny', prompt: 'x', max_tokens: -1 }), (e: unknown) => e instanceof OpenAI.BadRequestError && /max_tokens/.test(e.message));
    await assert.rejects(client.completions.create({ model: 'gpt-4', prompt: 'x' }), (e: unknown) => e instanceof OpenAI.NotFoundError);
  } finally {
    await server.shutdown(1000);
  }
});

test('validation: malformed JSON, wrong types, unknown model, oversize prompt, unsupported fields: an OpenAI error body, nothing generated', async () => {
  const model = peakedModel(config);
  const { server, url } = await start(model);
  try {
    const cases: [string, unknown, number, string | null, string | null][] = [
      // path, body, status, param, code
      ['/v1/completions', '{"prompt": "x",', 400, null, 'invalid_json'],
      ['/v1/completions', '[1, 2]', 400, null, null],
      ['/v1/completions', {}, 400, 'prompt', 'missing_required_parameter'],
      ['/v1/completions', { prompt: 5 }, 400, 'prompt', 'invalid_type'],
      ['/v1/completions', { prompt: [1, 999] }, 400, 'prompt', 'invalid_value'],
      ['/v1/completions', { prompt: [] }, 400, 'prompt', 'invalid_type'],
      ['/v1/completions', { prompt: 'x', max_tokens: 'a' }, 400, 'max_tokens', 'invalid_type'],
      ['/v1/completions', { prompt: 'x', max_tokens: 2.5 }, 400, 'max_tokens', 'invalid_type'],
      ['/v1/completions', { prompt: 'x', temperature: -1 }, 400, 'temperature', 'invalid_value'],
      ['/v1/completions', { prompt: 'x', top_p: 0 }, 400, 'top_p', 'invalid_value'],
      ['/v1/completions', { prompt: 'x', stream: 'yes' }, 400, 'stream', 'invalid_type'],
      ['/v1/completions', { prompt: 'x', stop: [1] }, 400, 'stop', 'invalid_type'],
      ['/v1/completions', { prompt: 'x', n: 100 }, 400, 'n', 'invalid_value'],
      ['/v1/completions', { prompt: 'x', logprobs: 3 }, 400, 'logprobs', 'unsupported_parameter'],
      ['/v1/completions', { prompt: 'x', frequency_penalty: 0.5 }, 400, 'frequency_penalty', 'unsupported_parameter'],
      ['/v1/completions', { prompt: 'x', model: 7 }, 400, 'model', 'invalid_type'],
      ['/v1/completions', { prompt: 'x'.repeat(100) }, 400, 'prompt', 'context_length_exceeded'],
      ['/v1/completions', { prompt: 'x'.repeat(95) }, 400, 'prompt', 'context_length_exceeded'],
      ['/v1/chat/completions', { messages: 'hi' }, 400, 'messages', 'invalid_type'],
      ['/v1/chat/completions', { messages: [{ role: 'wizard', content: 'x' }] }, 400, 'messages[0].role', 'invalid_value'],
      ['/v1/chat/completions', { messages: [{ role: 'user', content: [{ type: 'image_url' }] }] }, 400, 'messages[0].content', 'invalid_type'],
      ['/v1/chat/completions', { messages: [{ role: 'user', content: 'x'.repeat(100) }] }, 400, 'messages', 'context_length_exceeded'],
      ['/v1/completions', { prompt: 'x', model: 'nope' }, 404, 'model', 'model_not_found'],
      ['/v1/nothing', {}, 404, null, 'unknown_url'],
    ];
    for (const [path, body, status, param, code] of cases) {
      const res = await post(url, path, body);
      assert.equal(res.status, status, `${JSON.stringify(body)}: ${res.status}`);
      assert.match(res.headers.get('content-type') ?? '', /application\/json/);
      const e = (await res.json() as { error: { message: string; type: string; param: string | null; code: string | null } }).error;
      assert.equal(typeof e.message, 'string');
      assert.equal(e.type, status === 404 ? 'not_found_error' : 'invalid_request_error');
      assert.equal(e.param, param, JSON.stringify(body));
      assert.equal(e.code, code, JSON.stringify(body));
    }
    assert.equal((await fetch(`${url}/v1/completions`)).status, 405);
    const health = await (await fetch(`${url}/health`)).json() as { status: string; slots_busy: number };
    assert.deepEqual([health.status, health.slots_busy], ['ok', 0]);
    assert.equal(server.engine.stats().steps, 0, 'no request reached the decoder');
  } finally {
    await server.shutdown(1000);
  }
});

test('a client that disconnects mid-stream frees its slot; a full queue answers 429 at once', async () => {
  const model = peakedModel(longConfig);
  const { server, url } = await start(model, { slots: 1, queue: 0, slowMs: 2 });
  try {
    const ac = new AbortController();
    const res = await post(url, '/v1/completions', { prompt: 'a', max_tokens: 500, ignore_eos: true, stream: true }, ac.signal);
    const reader = res.body!.getReader();
    await reader.read(); // the first chunk: the sequence holds the only slot
    assert.equal(server.engine.stats().busy, 1);
    const busy = await post(url, '/v1/completions', { prompt: 'b', max_tokens: 2 });
    assert.equal(busy.status, 429);
    assert.equal(busy.headers.get('retry-after'), '1');
    assert.equal((await busy.json() as { error: { code: string } }).error.code, 'queue_full');
    ac.abort();
    await reader.read().catch(() => undefined);
    // the slot comes back: a new request is served in it
    const after = await (await post(url, '/v1/completions', { prompt: 'c', max_tokens: 3, ignore_eos: true })).json() as { usage: { completion_tokens: number } };
    assert.equal(after.usage.completion_tokens, 3);
    const s = server.engine.stats();
    assert.equal(s.cancelled, 1);
    assert.equal(s.completed, 1);
    assert.ok(s.decodedTokens < 400, `the aborted stream stopped early (${s.decodedTokens} tokens decoded)`);
    assert.equal(s.busy, 0);
  } finally {
    await server.shutdown(1000);
  }
});

test('shutdown: running requests finish within the grace period; past it they are cancelled and every connection closes', async () => {
  const model = peakedModel(longConfig);
  {
    const { server, url } = await start(model, { slowMs: 1 });
    const pending = post(url, '/v1/completions', { prompt: 'a', max_tokens: 5, ignore_eos: true }).then((r) => r.json()) as Promise<{ usage: { completion_tokens: number } }>;
    while (server.engine.stats().busy === 0) await new Promise((r) => setTimeout(r, 1));
    const r = await server.shutdown(10_000);
    assert.equal(r.finished, true);
    assert.equal((await pending).usage.completion_tokens, 5);
  }
  {
    const { server, url } = await start(model, { slowMs: 2 });
    const res = await post(url, '/v1/completions', { prompt: 'a', max_tokens: 500, ignore_eos: true, stream: true });
    const plain = post(url, '/v1/completions', { prompt: 'b', max_tokens: 500, ignore_eos: true });
    while (server.engine.stats().busy < 2) await new Promise((r) => setTimeout(r, 1));
    const r = await server.shutdown(20);
    assert.equal(r.finished, false);
    const text = await res.text();
    assert.match(text, /"code":"shutting_down"/);
    assert.doesNotMatch(text, /\[DONE\]/);
    assert.equal((await plain).status, 503);
    await assert.rejects(fetch(`${url}/health`));
    assert.equal(server.engine.stats().busy, 0);
  }
});

test('a decode step that throws ends the requests in it with 500; the server goes on serving', async () => {
  const model = peakedModel(config);
  const decoder = new Decoder(model);
  let fail = true;
  const step = decoder.step.bind(decoder);
  decoder.step = (items, logitsFor, reuse) => {
    if (fail) {
      fail = false;
      throw new Error('injected failure');
    }
    return step(items, logitsFor, reuse);
  };
  const server = new LlamaServer({ decoder, slots: 2, queue: 2, model: { id: 'tiny', contextLength: config.maxSeqLen, tokenizer: tok, vocab: null, template: 'chatml' } });
  const url = `http://127.0.0.1:${(await server.listen(0, '127.0.0.1')).port}`;
  try {
    const res = await post(url, '/v1/completions', { prompt: 'a', max_tokens: 3 });
    assert.equal(res.status, 500);
    assert.equal((await res.json() as { error: { type: string } }).error.type, 'server_error');
    const ok = await post(url, '/v1/completions', { prompt: 'a', max_tokens: 3, ignore_eos: true });
    assert.equal((await ok.json() as { usage: { completion_tokens: number } }).usage.completion_tokens, 3);
  } finally {
    await server.shutdown(1000);
  }
});

test('Decoder.step: prompt chunks and decode rows in one batch give each item the logits it gets alone', () => {
  const model = peakedModel(config);
  const dec = new Decoder(model);
  const a = dec.newCache();
  const b = dec.newCache();
  const c = dec.newCache();
  dec.prefill(a, [1, 40, 41, 42]);
  const both = dec.step([{ cache: a, tokens: [50] }, { cache: b, tokens: [1, 60, 61] }, { cache: c, tokens: [1] }], 'last', true).map((x) => Array.from(x));
  const a2 = dec.newCache();
  dec.prefill(a2, [1, 40, 41, 42]);
  const alone = [dec.step([{ cache: a2, tokens: [50] }])[0], dec.prefill(dec.newCache(), [1, 60, 61]), dec.prefill(dec.newCache(), [1])];
  for (let k = 0; k < 3; k++) {
    let err = 0;
    for (let i = 0; i < alone[k].length; i++) err = Math.max(err, Math.abs(both[k][i] - alone[k][i]));
    assert.ok(err <= 1e-5, `item ${k}: max |Δlogit| ${err}`);
  }
});

test('chat templates: recognised from their Jinja source, rendered, markers that are vocabulary pieces become their ids', () => {
  assert.equal(detectTemplate("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"), 'chatml');
  assert.equal(detectTemplate("{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% endif %}{% endfor %}"), 'llama2');
  assert.equal(detectTemplate("{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"), 'llama3');
  assert.equal(detectTemplate("{% for message in messages %}{% if message['role'] == 'user' %}{{ '<|user|>\\n' + message['content'] + eos_token }}{% endif %}{% endfor %}"), 'zephyr');
  assert.equal(detectTemplate("{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"), 'gemma');
  assert.equal(detectTemplate('{{ messages }}'), null);
  const msgs: ChatMessage[] = [{ role: 'system', content: 'S' }, { role: 'user', content: 'Q1' }, { role: 'assistant', content: 'A1' }, { role: 'user', content: 'Q2' }];
  const text = (parts: ReturnType<typeof renderChat>) => parts.map((p) => (typeof p === 'string' ? p : p.special)).join('');
  assert.equal(text(renderChat('llama2', msgs)), '<s>[INST] <<SYS>>\nS\n<</SYS>>\n\nQ1 [/INST] A1 </s><s>[INST] Q2 [/INST]');
  assert.equal(text(renderChat('zephyr', msgs)), '<|system|>\nS</s>\n<|user|>\nQ1</s>\n<|assistant|>\nA1</s>\n<|user|>\nQ2</s>\n<|assistant|>\n');
  assert.equal(text(renderChat('llama3', msgs.slice(1, 2))), '<|start_header_id|>user<|end_header_id|>\n\nQ1<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n');
  assert.equal(text(renderChat('gemma', msgs.slice(0, 2))), '<start_of_turn>user\nS\n\nQ1<end_of_turn>\n<start_of_turn>model\n');
  // a vocabulary with <|im_start|> and <|im_end|> as control pieces: they are single tokens and <|im_end|> stops
  const v = byteVocab(261);
  v.pieces[259] = '<|im_start|>';
  v.pieces[260] = '<|im_end|>';
  v.types[259] = v.types[260] = TokenType.CONTROL;
  const ids = encodeChat(renderChat('chatml', [{ role: 'user', content: 'hi' }]), tok, v);
  assert.deepEqual(ids, [1, 259, ...tok.encode('user\nhi'), 260, ...tok.encode('\n'), 259, ...tok.encode('assistant\n')]);
  assert.deepEqual(turnStop('chatml', tok, v), { tokens: [260], strings: [] });
  assert.deepEqual(turnStop('chatml', tok, null), { tokens: [], strings: ['<|im_end|>'] });
  // llama2's leading <s> is the BOS the prompt starts with, not a second one
  assert.deepEqual(encodeChat(renderChat('llama2', [{ role: 'user', content: 'x' }]), tok, null), [1, ...tok.encode('[INST] x [/INST]')]);
});

/** A GGUF of the model carrying `tokenizer.chat_template`: our writer's file with one more key. */
function ggufWithTemplate(model: Llama, path: string, template: string): void {
  const plain = `${path}.plain.gguf`;
  writeLlamaGguf(plain, model, byteVocab(model.config.vocabSize));
  const f = readGguf(plain);
  const scalarType = (v: GgufValue): T => (typeof v === 'string' ? T.STRING : typeof v === 'boolean' ? T.BOOL : Number.isInteger(v) ? T.INT32 : T.FLOAT32);
  const kvs: GgufKv[] = [...f.metadata].filter(([k]) => k !== 'general.alignment').map(([key, value]) => {
    if (!Array.isArray(value)) return { key, type: scalarType(value), value };
    const et = value.every((x) => typeof x === 'string') ? T.STRING : value.every((x) => Number.isInteger(x)) ? T.INT32 : T.FLOAT32;
    return { key, type: T.ARRAY, elemType: et, value };
  });
  kvs.push({ key: 'tokenizer.chat_template', type: T.STRING, value: template });
  writeGguf(path, kvs, [...f.tensors.values()].map((t) => ({ name: t.name, shape: t.shape, data: f.readF32(t.name), type: 'F32' as const })));
  rmSync(plain);
}

test('serve command: a GGUF with a llama-2 chat template, the openai client round trip, SIGTERM exits 0', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'llama-ts-serve-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'tiny.gguf');
  ggufWithTemplate(peakedModel(config), path, "{{ bos_token }}{% for m in messages %}{{ '[INST] ' + m['content'] + ' [/INST]' }}{% endfor %}");
  const loaded = loadAnyModel(path, createRefBackend('f32'));
  assert.match(loaded.chatTemplate ?? '', /\[INST\]/);
  const child = spawn(process.execPath, [bin, 'serve', '--model', path, '--backend', 'ref', '--port', '0', '--model-name', 'tiny', '--parallel', '2'], { cwd: root });
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  try {
    let out = '';
    let err = '';
    child.stderr.on('data', (b) => (err += b));
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout.on('data', (b) => {
        out += b;
        const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      child.on('exit', (code) => reject(new Error(`serve exited ${code}: ${err}`)));
    });
    assert.match(out, /chat template llama2 \(the model's tokenizer\.chat_template\)/);
    const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 20_000 });
    const messages: ChatMessage[] = [{ role: 'user', content: 'Hi' }];
    const [exp] = await expected(loaded.model, [encodeChat(renderChat('llama2', messages), loaded.tokenizer, loaded.vocab)], { maxTokens: 8, temperature: 0, tokenizer: loaded.tokenizer });
    const chat = await client.chat.completions.create({ model: 'tiny', messages, max_tokens: 8, temperature: 0 });
    assert.equal(chat.choices[0].message.content, exp.text);
    let streamed = '';
    for await (const chunk of await client.chat.completions.create({ model: 'tiny', messages, max_tokens: 8, temperature: 0, stream: true })) streamed += chunk.choices[0]?.delta?.content ?? '';
    assert.equal(streamed, exp.text);
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.match(out, /SIGTERM: shutting down/);
    assert.match(out, /stopped \(every request finished\)/);
  } finally {
    clearTimeout(timer);
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});


test('serve command: flag mistakes are one-line errors', () => {
  failsWithOneLine(['serve'], /--model PATH is required/);
  failsWithOneLine(['serve', '--model', 'x.gguf', '--chat-template', 'jinja'], /--chat-template must be one of chatml, llama3, llama2, zephyr, gemma/);
  failsWithOneLine(['serve', '--model', 'x.gguf', '--port', '70000'], /--port must be at most 65535/);
  failsWithOneLine(['serve', '--model', 'x.gguf', '--parallel', '0'], /--parallel expects an integer >= 1/);
});
