/**
 * The HTTP server: OpenAI-compatible /v1/completions and /v1/chat/completions (JSON, or server-sent events with
 * `stream: true`), /v1/models, /health, over one BatchEngine.
 *
 * Status codes: 400 malformed JSON or an invalid request (OpenAI's error body), 404 unknown path or model, 405 wrong
 * method, 413 body over the limit, 429 the engine's queue is full (Retry-After: 1), 503 shutting down. A client that
 * disconnects cancels its sequences (their slots are free for the next step). `shutdown(grace)` stops accepting
 * connections, lets running requests finish for up to `grace` ms, then cancels the rest (a stream gets an error
 * event, a waiting JSON request a 503) and closes every connection: it always returns.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { BatchEngine, type EngineOptions, type SequenceEvent, type SequenceHandle } from './engine.js';
import {
  ApiError, chatResponse, completionResponse, finishName, parseRequest, streamChunk, usage, type FinishName, type ModelInfo, type ParsedRequest,
} from './openai.js';
import type { Decoder } from '../inference/generate.js';

export interface ServerOptions extends EngineOptions {
  decoder: Decoder;
  model: ModelInfo;
  /** Largest request body accepted, bytes (default 4 MiB). */
  maxBodyBytes?: number;
}

export class LlamaServer {
  readonly engine: BatchEngine;
  readonly http: Server;
  readonly model: ModelInfo;
  private readonly maxBody: number;
  private closing = false;
  private readonly created = Math.floor(Date.now() / 1000);
  /** Requests being answered, for shutdown. */
  private readonly inflight = new Set<Reply>();
  private requests = 0;

  constructor(o: ServerOptions) {
    this.model = o.model;
    this.engine = new BatchEngine(o.decoder, o.model.tokenizer, o);
    this.maxBody = o.maxBodyBytes ?? 4 << 20;
    this.http = createServer((req, res) => {
      this.handle(req, res).catch((e) => {
        process.stderr.write(`llama-ts serve: ${(e as Error).stack ?? String(e)}\n`);
        if (!res.headersSent) sendError(res, new ApiError(500, 'internal server error'));
        else res.end();
      });
    });
    this.http.keepAliveTimeout = 5000;
  }

  listen(port: number, host: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(port, host, () => {
        this.http.off('error', reject);
        resolve(this.http.address() as AddressInfo);
      });
    });
  }

  /** Stops accepting, waits up to graceMs for running requests, cancels what is left, closes every connection. */
  async shutdown(graceMs: number): Promise<{ finished: boolean }> {
    this.closing = true;
    const closed = new Promise<void>((r) => this.http.close(() => r()));
    this.http.closeIdleConnections();
    let timer: NodeJS.Timeout | undefined;
    const drained = await Promise.race([
      this.engine.idle().then(() => true),
      new Promise<boolean>((r) => { timer = setTimeout(() => r(false), graceMs); }),
    ]);
    clearTimeout(timer);
    if (!drained) {
      for (const r of [...this.inflight]) r.fail(new ApiError(503, 'the server is shutting down', null, 'shutting_down'));
      this.engine.cancelAll();
    }
    // responses were ended above or by their last event; let the writes go out, then drop every connection
    await new Promise((r) => setImmediate(r));
    this.http.closeAllConnections();
    await closed;
    return { finished: drained };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    if (this.closing) {
      res.setHeader('Connection', 'close');
      return sendError(res, new ApiError(503, 'the server is shutting down', null, 'shutting_down'));
    }
    const route: Route | undefined = ROUTES[path] ?? (path.startsWith('/v1/models/') ? 'model' : undefined);
    if (!route) return sendError(res, new ApiError(404, `no route for ${req.method} ${path}`, null, 'unknown_url'));
    const method = route === 'completion' || route === 'chat' ? 'POST' : 'GET';
    if (req.method !== method) {
      res.setHeader('Allow', method);
      return sendError(res, new ApiError(405, `${path} takes ${method}, not ${req.method}`, null, 'method_not_allowed'));
    }
    switch (route) {
      case 'health': {
        const s = this.engine.stats();
        return sendJson(res, 200, { status: 'ok', slots: s.slots, slots_busy: s.busy, queue: s.waiting, queue_limit: s.queueLimit, completed: s.completed, cancelled: s.cancelled });
      }
      case 'models':
        return sendJson(res, 200, { object: 'list', data: [this.modelObject()] });
      case 'model': {
        const id = decodeURIComponent(path.slice('/v1/models/'.length));
        if (id !== this.model.id) return sendError(res, new ApiError(404, `The model '${id}' does not exist`, 'model', 'model_not_found'));
        return sendJson(res, 200, this.modelObject());
      }
      default:
        return this.generate(route, req, res);
    }
  }

  private modelObject() {
    return { id: this.model.id, object: 'model', created: this.created, owned_by: 'llama-ts', context_length: this.model.contextLength };
  }

  private async generate(kind: 'completion' | 'chat', req: IncomingMessage, res: ServerResponse): Promise<void> {
    let parsed: ParsedRequest;
    try {
      const text = await readBody(req, this.maxBody);
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch (e) {
        throw new ApiError(400, `the request body is not valid JSON: ${(e as Error).message}`, null, 'invalid_json');
      }
      parsed = parseRequest(kind, body, this.model);
    } catch (e) {
      if (e instanceof ApiError) return sendError(res, e);
      throw e;
    }
    if (!this.engine.canAccept(parsed.sequences.length)) {
      res.setHeader('Retry-After', '1');
      const st = this.engine.stats();
      return sendError(res, new ApiError(429, `the queue is full (${st.waiting} waiting for ${st.slots} busy slots); retry later`, null, 'queue_full'));
    }
    const id = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${++this.requests}${randomBytes(6).toString('hex')}`;
    const reply = new Reply(parsed, res, { id, created: Math.floor(Date.now() / 1000), model: this.model.id }, () => this.inflight.delete(reply));
    this.inflight.add(reply);
    res.on('close', () => reply.abandon()); // a client that goes away before its answer ends frees its slots
    reply.attach(this.engine.submit(parsed.sequences, (i, ev) => reply.event(i, ev)));
  }
}

/**
 * One request's answer in progress: streams each choice's text as it comes (SSE) or collects it (JSON), and ends
 * exactly once: complete, failed (error body or error event), or abandoned by its client (no write).
 */
class Reply {
  private readonly texts: string[];
  private readonly finishes: FinishName[];
  private readonly tokens: number[];
  private readonly first: boolean[];
  private open: number;
  private ended = false;
  private handles: SequenceHandle[] = [];

  constructor(private readonly parsed: ParsedRequest, private readonly res: ServerResponse, private readonly head: ReplyHead, private readonly onEnd: () => void) {
    const n = parsed.sequences.length;
    this.texts = new Array<string>(n).fill('');
    this.finishes = new Array<FinishName>(n).fill('length');
    this.tokens = new Array<number>(n).fill(0);
    this.first = new Array<boolean>(n).fill(true);
    this.open = n;
    if (parsed.stream) {
      res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive' });
      res.flushHeaders();
    }
  }

  attach(handles: SequenceHandle[]): void {
    this.handles = handles;
    if (this.ended) for (const h of handles) h.cancel();
  }

  /** An engine event of choice i. */
  event(i: number, ev: SequenceEvent): void {
    if (this.ended) return;
    if (ev.done === 'cancelled') return this.fail(new ApiError(503, 'the server is shutting down', null, 'shutting_down'));
    if (ev.done === 'error') return this.fail(new ApiError(500, 'generation failed'));
    const { parsed, head } = this;
    this.texts[i] += ev.text;
    this.tokens[i] = ev.completionTokens;
    // a choice's first chunk goes out with its first token, even when that token's text is held back
    if (parsed.stream && (ev.text || this.first[i])) {
      this.write(streamChunk(parsed.kind, head, i, ev.text, null, this.first[i]));
      this.first[i] = false;
    }
    if (!ev.done) return;
    this.finishes[i] = finishName(ev.done);
    if (parsed.stream) this.write(streamChunk(parsed.kind, head, i, '', this.finishes[i], false));
    if (--this.open > 0) return;
    this.end();
    const u = usage(parsed.promptTokens, this.tokens.reduce((a, b) => a + b, 0));
    if (parsed.stream) {
      if (parsed.includeUsage) this.write(streamChunk(parsed.kind, head, -1, '', null, false, u));
      this.res.end('data: [DONE]\n\n');
    } else {
      sendJson(this.res, 200, (parsed.kind === 'chat' ? chatResponse : completionResponse)(head, this.texts, this.finishes, u));
    }
  }

  /** Ends with an error: a JSON error response, or an error event (and no [DONE]) on a stream already begun. */
  fail(e: ApiError): void {
    if (this.ended) return;
    this.end();
    if (this.parsed.stream) {
      this.write(e.body());
      this.res.end();
    } else {
      sendError(this.res, e);
    }
  }

  /** The client closed the connection first: nothing more is written, the sequences leave the engine. */
  abandon(): void {
    if (!this.ended) this.end();
  }

  private end(): void {
    this.ended = true;
    for (const h of this.handles) h.cancel();
    this.onEnd();
  }

  private write(chunk: unknown): void {
    this.res.write(`data: ${JSON.stringify(chunk)}\n\n`);
  }
}

interface ReplyHead {
  id: string;
  created: number;
  model: string;
}

type Route = 'health' | 'models' | 'model' | 'completion' | 'chat';

const ROUTES: Record<string, Route> = {
  '/health': 'health', '/v1/health': 'health', '/v1/models': 'models', '/v1/completions': 'completion', '/v1/chat/completions': 'chat',
};

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res: ServerResponse, e: ApiError): void {
  sendJson(res, e.status, e.body());
}

function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (b: Buffer) => {
      size += b.length;
      if (size > limit) over = true;
      else parts.push(b);
    });
    req.on('end', () => (over ? reject(new ApiError(413, `the request body is over ${limit} bytes`, null, 'request_too_large')) : resolve(Buffer.concat(parts).toString('utf8'))));
    req.on('error', reject);
  });
}
