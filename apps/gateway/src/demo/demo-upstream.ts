/**
 * The bundled demo upstream: a tiny OpenAI-compatible server that `npm start`
 * runs when no DOWNSTREAM_URL is configured outside production, so a newcomer
 * can send real SDK traffic through KeyPin without owning an LLM relay.
 *
 * Plain `node:http`, no framework, no dependencies. It behaves like a relay
 * just enough to be convincing: it wants a bearer key, it answers
 * `GET /v1/models` and `POST /v1/chat/completions` (plain or `stream: true`),
 * and every error uses the OpenAI error shape.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';

export interface DemoUpstreamOptions {
  /** Interface to listen on [127.0.0.1]. */
  host?: string;
  /** Port to listen on; 0 picks a free one [0]. */
  port?: number;
}

export interface DemoUpstream {
  /** Base URL, e.g. `http://127.0.0.1:41234` (no trailing slash). */
  url: string;
  close(): Promise<void>;
}

/** Largest request body accepted, in bytes; past it the answer is 413. */
export const DEMO_MAX_BODY_BYTES = 1024 * 1024;
/** Pause between two streamed chunks. */
export const DEMO_STREAM_INTERVAL_MS = 20;

/** After a 413, keep discarding at most this much more before hanging up. */
const DRAIN_LIMIT_BYTES = 8 * 1024 * 1024;
/** A fixed creation time keeps the model list byte-for-byte stable. */
const MODELS_CREATED = 1_700_000_000;
const DEMO_MODELS = ['keypin-demo-small', 'keypin-demo-large'] as const;
const DEFAULT_MODEL: string = DEMO_MODELS[0];
const MAX_ECHO_CHARS = 200;

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export async function startDemoUpstream(opts: DemoUpstreamOptions = {}): Promise<DemoUpstream> {
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? 0;

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      // Only a bug lands here; answer like a server would, then move on.
      if (!res.headersSent) {
        sendError(res, 500, 'server_error', 'internal_error', 'The demo upstream failed.');
      } else {
        res.destroy(err instanceof Error ? err : undefined);
      }
    });
  });
  server.keepAliveTimeout = 65_000;

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });

  const address = server.address() as AddressInfo;
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${urlHost}:${address.port}`;

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve, reject) => {
      server.close((err) => (err ? reject(err) : resolve()));
      // Streams in progress and idle keep-alive sockets would hold close() open.
      server.closeAllConnections();
    });
    return closing;
  };

  return { url, close };
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = pathOf(req.url);
  const method = req.method ?? 'GET';

  try {
    if (path === '/v1/models' || path === '/models') {
      requireMethod(method, 'GET');
      requireKey(req);
      sendJson(res, 200, modelList());
      return;
    }
    if (path === '/v1/chat/completions' || path === '/chat/completions') {
      requireMethod(method, 'POST');
      requireKey(req);
      const body = await readJsonBody(req);
      const chat = parseChatRequest(body);
      if (chat.stream) {
        streamCompletion(res, chat);
      } else {
        sendJson(res, 200, completion(chat));
      }
      return;
    }
    throw new HttpError(404, 'invalid_request_error', 'not_found', `Unknown request URL: ${method} ${path}.`);
  } catch (err) {
    if (!(err instanceof HttpError)) throw err;
    if (err.status === 413) {
      // The rest of an oversized body is not worth reading: answer, then hang up.
      res.setHeader('connection', 'close');
      sendError(res, err.status, err.type, err.code, err.message);
      discardRest(req);
      return;
    }
    sendError(res, err.status, err.type, err.code, err.message);
  }
}

function pathOf(rawUrl: string | undefined): string {
  const url = rawUrl ?? '/';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

function requireMethod(actual: string, expected: string): void {
  if (actual !== expected) {
    throw new HttpError(
      405,
      'invalid_request_error',
      'method_not_allowed',
      `Method ${actual} is not allowed here; use ${expected}.`,
    );
  }
}

function requireKey(req: IncomingMessage): void {
  const header = req.headers.authorization;
  const match = header === undefined ? null : /^\s*bearer\s+(\S.*)$/i.exec(header);
  if (!match) {
    throw new HttpError(
      401,
      'invalid_request_error',
      'invalid_api_key',
      'You didn\'t provide an API key. Send it as "Authorization: Bearer YOUR_KEY".',
    );
  }
}

function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > DEMO_MAX_BODY_BYTES) {
    return Promise.reject(tooLarge());
  }
  return new Promise<unknown>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > DEMO_MAX_BODY_BYTES) {
        cleanup();
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      const text = Buffer.concat(chunks, size).toString('utf8');
      try {
        resolve(JSON.parse(text) as unknown);
      } catch {
        reject(
          new HttpError(
            400,
            'invalid_request_error',
            'invalid_json',
            'We could not parse the JSON body of your request.',
          ),
        );
      }
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

function tooLarge(): HttpError {
  return new HttpError(
    413,
    'invalid_request_error',
    'request_too_large',
    `The request body is larger than ${DEMO_MAX_BODY_BYTES} bytes.`,
  );
}

function discardRest(req: IncomingMessage): void {
  if (req.complete) return;
  let drained = 0;
  req.on('data', (chunk: Buffer) => {
    drained += chunk.length;
    if (drained > DRAIN_LIMIT_BYTES) req.destroy();
  });
  req.on('error', () => undefined);
  req.resume();
}

interface ChatRequest {
  model: string;
  stream: boolean;
  includeUsage: boolean;
  lastUserText: string;
}

function parseChatRequest(body: unknown): ChatRequest {
  if (!isRecord(body)) {
    throw new HttpError(
      400,
      'invalid_request_error',
      'invalid_body',
      'The request body must be a JSON object.',
    );
  }
  const messages = body['messages'];
  if (!Array.isArray(messages) || messages.length === 0) {
    throw new HttpError(
      400,
      'invalid_request_error',
      'missing_messages',
      "'messages' must be a non-empty array.",
    );
  }
  const model = typeof body['model'] === 'string' && body['model'] !== '' ? body['model'] : DEFAULT_MODEL;
  const streamOptions = body['stream_options'];
  return {
    model,
    stream: body['stream'] === true,
    includeUsage: isRecord(streamOptions) && streamOptions['include_usage'] === true,
    lastUserText: lastUserText(messages),
  };
}

function lastUserText(messages: unknown[]): string {
  for (let i = messages.length - 1; i >= 0; i--) {
    const message = messages[i];
    if (!isRecord(message) || message['role'] !== 'user') continue;
    const content = message['content'];
    if (typeof content === 'string') return content;
    if (Array.isArray(content)) {
      // Multi-part content: keep the text parts, skip images and the like.
      return content
        .map((part) => (isRecord(part) && typeof part['text'] === 'string' ? part['text'] : ''))
        .filter((text) => text !== '')
        .join(' ');
    }
    return '';
  }
  return '';
}

function replyText(chat: ChatRequest): string {
  const text = chat.lastUserText.trim().replace(/\s+/g, ' ');
  if (text === '') return 'Hello from the KeyPin demo upstream.';
  const clipped = text.length > MAX_ECHO_CHARS ? `${text.slice(0, MAX_ECHO_CHARS)}…` : text;
  return `You said: ${clipped}`;
}

/** A rough token count, good enough for a demo's usage block. */
function tokens(text: string): number {
  return Math.max(1, Math.ceil(text.length / 4));
}

function usage(chat: ChatRequest, reply: string): Record<string, number> {
  const prompt = tokens(chat.lastUserText);
  const completionTokens = tokens(reply);
  return {
    prompt_tokens: prompt,
    completion_tokens: completionTokens,
    total_tokens: prompt + completionTokens,
  };
}

function completionId(): string {
  return `chatcmpl-demo${randomBytes(9).toString('hex')}`;
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

function modelList(): unknown {
  return {
    object: 'list',
    data: DEMO_MODELS.map((id) => ({
      id,
      object: 'model',
      created: MODELS_CREATED,
      owned_by: 'keypin-demo',
    })),
  };
}

function completion(chat: ChatRequest): unknown {
  const reply = replyText(chat);
  return {
    id: completionId(),
    object: 'chat.completion',
    created: nowSeconds(),
    model: chat.model,
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: reply },
        logprobs: null,
        finish_reason: 'stop',
      },
    ],
    usage: usage(chat, reply),
  };
}

/** Splits the reply into a few word-sized pieces, spaces kept with the word after them. */
function pieces(reply: string): string[] {
  return reply.match(/\s*\S+/g) ?? [reply];
}

function streamCompletion(res: ServerResponse, chat: ChatRequest): void {
  const id = completionId();
  const created = nowSeconds();
  const reply = replyText(chat);
  const chunk = (delta: Record<string, unknown>, finishReason: string | null): unknown => ({
    id,
    object: 'chat.completion.chunk',
    created,
    model: chat.model,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
  });

  const events: string[] = [JSON.stringify(chunk({ role: 'assistant', content: '' }, null))];
  for (const piece of pieces(reply)) events.push(JSON.stringify(chunk({ content: piece }, null)));
  events.push(JSON.stringify(chunk({}, 'stop')));
  if (chat.includeUsage) {
    events.push(
      JSON.stringify({
        id,
        object: 'chat.completion.chunk',
        created,
        model: chat.model,
        choices: [],
        usage: usage(chat, reply),
      }),
    );
  }
  events.push('[DONE]');

  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    'x-accel-buffering': 'no',
  });
  res.flushHeaders();

  let next = 0;
  let timer: NodeJS.Timeout | undefined;
  const writeNext = (): void => {
    timer = undefined;
    const event = events[next++];
    if (event === undefined || res.destroyed) return;
    res.write(`data: ${event}\n\n`);
    if (next < events.length) {
      timer = setTimeout(writeNext, DEMO_STREAM_INTERVAL_MS);
    } else {
      res.end();
    }
  };
  // The client went away (or the server is closing): stop writing.
  res.on('close', () => {
    if (timer !== undefined) clearTimeout(timer);
  });
  writeNext();
}

function sendJson(res: ServerResponse, status: number, payload: unknown): void {
  const body = JSON.stringify(payload);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

function sendError(res: ServerResponse, status: number, type: string, code: string, message: string): void {
  sendJson(res, status, { error: { message, type, code } });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
