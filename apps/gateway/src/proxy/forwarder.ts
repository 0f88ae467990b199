import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { Pool } from 'undici';
import type { Logger } from 'pino';
import type { MetricsService } from '../infra/metrics/metrics.service';
import { RateLimitedLog } from '../infra/rate-limited-log';
import { HOP_BY_HOP_HEADERS } from './hop-by-hop';
import { sendError } from './responses';
import { UpstreamPool } from './upstream/http1-pool';

export interface ForwarderOptions {
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  /** Connections to the downstream at most (0 = unlimited); further requests wait in the pool's queue. */
  maxConnections: number;
  /** A client request body silent this long is aborted (0 = never). */
  requestBodyTimeoutMs: number;
  /**
   * DOWNSTREAM_CLIENT: `undici` (its `Pool`) or `keypin` (KeyPin's own
   * HTTP/1.1 client, `upstream/http1-pool.ts`); docs/upstream-client.md.
   */
  client: 'undici' | 'keypin';
}

/** What a forwarded request is handed to: undici's `Pool` and KeyPin's `UpstreamPool` both are one. */
interface UpstreamDispatcher {
  dispatch(
    opts: { method: string; path: string; headers: string[]; body: Readable | Buffer | null },
    handler: ResponseRelay,
  ): unknown;
  close(): Promise<void>;
}

/** What a forwarded response has sent to the client so far (for the access log). */
export interface ForwardedBytes {
  readonly bytesOut: number;
}

/** Told the downstream's final status as soon as its head arrives (before the client sees it). */
export type StatusListener = (status: number) => void;

/** The response head did not come in time (undici's code, KeyPin's client's). */
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UPSTREAM_HEADERS_TIMEOUT']);

/** How long an idle downstream connection is kept. */
const KEEP_ALIVE_MS = 30_000;

/** One reason object for every abort KeyPin starts (no allocation per request). */
const CLIENT_GONE = new Error('client closed the connection');
const DONE_WITH_CLIENT = new Error('KeyPin answered the client itself');

/**
 * Streams a request to the downstream and its response back, through one
 * long-lived connection pool (undici's or KeyPin's own, DOWNSTREAM_CLIENT),
 * with backpressure both ways and no buffering. Both take the same
 * `dispatch` with a small handler object per request.
 */
export class Forwarder {
  private readonly pool: UpstreamDispatcher;
  private readonly basePath: string;
  readonly origin: string;
  readonly failureLog: RateLimitedLog;
  /** Requests handed to the pool and not yet settled: above `maxConnections` the newest wait for a connection. */
  private active = 0;
  /** How often a request body's progress is checked: the stall limit is enforced within a tenth of itself. */
  readonly bodyCheckMs: number;

  constructor(
    readonly downstream: URL,
    readonly options: ForwarderOptions,
    readonly metrics: MetricsService,
    private readonly logger: Logger,
  ) {
    this.origin = downstream.origin;
    this.failureLog = new RateLimitedLog(logger, 'downstream request failed');
    this.basePath = downstream.pathname.replace(/\/+$/, '');
    this.bodyCheckMs = Math.max(50, Math.floor(options.requestBodyTimeoutMs / 10));
    this.pool =
      options.client === 'keypin'
        ? new UpstreamPool(downstream, {
            connectTimeoutMs: options.connectTimeoutMs,
            headersTimeoutMs: options.headersTimeoutMs,
            bodyTimeoutMs: options.bodyTimeoutMs,
            keepAliveTimeoutMs: KEEP_ALIVE_MS,
            maxConnections: options.maxConnections,
          })
        : new Pool(this.origin, {
            connect: { timeout: options.connectTimeoutMs },
            headersTimeout: options.headersTimeoutMs,
            bodyTimeout: options.bodyTimeoutMs,
            keepAliveTimeout: KEEP_ALIVE_MS,
            pipelining: 1,
            connections: options.maxConnections === 0 ? null : options.maxConnections,
          });
  }

  /** The downstream path for a client request target. */
  pathFor(url: string): string {
    return this.basePath === '' ? url : this.basePath + url;
  }

  /**
   * Forwards `req` to `path` (from `pathFor`, or a route's) with `headers`
   * (already stripped of hop-by-hop headers and carrying KeyPin's X-Real-IP
   * / X-Forwarded-For). `body`: the request
   * itself (streamed), the bytes a policy already read, or null.
   * `onStatus`, when given, hears the downstream's final status;
   * `answerHeaders` (flat name/value pairs) are set on the answer, replacing
   * the downstream's headers of the same names.
   */
  forward(
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    headers: string[],
    body: IncomingMessage | Buffer | null,
    onStatus?: StatusListener,
    answerHeaders?: readonly string[] | null,
  ): ForwardedBytes {
    const watchBody = body === req && this.options.requestBodyTimeoutMs > 0 ? req : null;
    const handler = new ResponseRelay(res, this, watchBody, onStatus, answerHeaders ?? null);
    const opts = {
      method: req.method as string,
      path,
      headers,
      body,
    };
    res.once('close', handler.onClientClose);
    // Every connection busy: this request queues in the pool, where undici's
    // headers timeout has not started yet. Bound the wait by the same limit.
    if (++this.active > this.options.maxConnections && this.options.maxConnections !== 0) {
      handler.limitQueueWait(this.options.headersTimeoutMs);
    }
    this.pool.dispatch(opts, handler);
    return handler;
  }

  /** Called once by each relay when the pool is done with its request. */
  settled(): void {
    this.active--;
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}

function uncork(res: ServerResponse): void {
  res.uncork();
}

/**
 * Relays one downstream response to the client (the handler protocol of
 * undici's `dispatch`, which KeyPin's client speaks too).
 * It also enforces the two client-side limits of a forwarded request: the
 * wait for a pool connection, and BODY_TIMEOUT for a stalled upload.
 */
class ResponseRelay implements ForwardedBytes {
  /** Response body bytes passed to the client. */
  bytesOut = 0;
  private abortDownstream: ((err?: Error) => void) | null = null;
  private resume: (() => void) | null = null;
  /** undici called onComplete or onError: nothing more comes from the downstream. */
  private settled = false;
  /** Nothing more goes to the client: it left, or KeyPin answered it (408/504) itself. */
  private detached = false;
  /** The queue-wait timer until a connection is assigned, then the body-progress timer. */
  private timer: NodeJS.Timeout | null = null;
  private bodyBytesSeen = 0;
  private bodyQuietSince = 0;
  private readonly started = performance.now();

  constructor(
    private readonly res: ServerResponse,
    private readonly owner: Forwarder,
    /** The request whose body is watched for stalls, or null. */
    private readonly body: IncomingMessage | null,
    private readonly onStatus: StatusListener | undefined,
    private readonly answerHeaders: readonly string[] | null,
  ) {}

  readonly onClientClose = (): void => {
    if (this.settled) return;
    if (!this.detached) {
      this.detached = true;
      this.owner.metrics.downstreamError('aborted');
    }
    this.clearTimer();
    this.abortDownstream?.(CLIENT_GONE);
  };

  private readonly onDrain = (): void => {
    this.resume?.();
  };

  /** Answers 504 if no connection is free within `ms`; the request is aborted when it gets one. */
  limitQueueWait(ms: number): void {
    this.timer = setTimeout(this.onQueueTimeout, ms);
  }

  private readonly onQueueTimeout = (): void => {
    this.timer = null;
    if (this.settled || this.detached) return;
    this.detached = true;
    this.owner.metrics.downstreamError('timeout');
    sendError(this.res, 'gateway_timeout', 'The upstream did not answer in time.', true);
  };

  onConnect(abort: (err?: Error) => void): void {
    this.clearTimer(); // out of the queue
    if (this.detached) {
      abort(this.res.headersSent ? DONE_WITH_CLIENT : CLIENT_GONE);
      return;
    }
    this.abortDownstream = abort;
    if (this.body !== null) this.watchBody(this.body);
  }

  onRequestSent(): void {
    this.clearTimer(); // the whole body arrived
  }

  /** `rawHeaders`: Buffers from undici, latin1 strings from KeyPin's client. */
  onHeaders(
    statusCode: number,
    rawHeaders: readonly (Buffer | string)[],
    resume: () => void,
    statusText?: string,
  ): boolean {
    if (statusCode < 200) return true; // 1xx informational: not relayed
    if (this.detached) return true; // answered already; the abort follows with the client's close
    this.onStatus?.(statusCode);
    this.resume = resume;
    this.owner.metrics.downstreamSeconds.observe((performance.now() - this.started) / 1000);
    const headers = filterResponseHeaders(rawHeaders);
    if (this.answerHeaders !== null) replaceHeaders(headers, this.answerHeaders);
    // Cork until the end of this tick: a body that arrived with the head
    // (the common case) leaves in the same write as the head; a stream's
    // head (SSE) still goes out at once, before its first event.
    this.res.cork();
    if (statusText) this.res.writeHead(statusCode, statusText, headers);
    else this.res.writeHead(statusCode, headers);
    this.res.flushHeaders();
    process.nextTick(uncork, this.res);
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.detached) return true;
    this.bytesOut += chunk.length;
    const ok = this.res.write(chunk);
    if (!ok) this.res.once('drain', this.onDrain);
    return ok;
  }

  onComplete(): void {
    this.settle();
    if (!this.detached) this.res.end();
  }

  onError(err: Error & { code?: string }): void {
    this.settle();
    if (this.detached) return;
    if (this.res.headersSent) {
      // Mid-response: the status is gone already; cut the connection so the
      // client sees an incomplete response rather than a clean end.
      this.owner.metrics.downstreamError('reset');
      this.res.destroy(err);
      return;
    }
    if (err.code !== undefined && TIMEOUT_CODES.has(err.code)) {
      this.owner.metrics.downstreamError('timeout');
      sendError(this.res, 'gateway_timeout', 'The upstream did not answer in time.', true);
    } else {
      this.owner.metrics.downstreamError('unreachable');
      this.owner.failureLog.warn({ err: err.message, code: err.code });
      sendError(this.res, 'bad_gateway', 'The upstream could not be reached.', true);
    }
  }

  private settle(): void {
    if (this.settled) return;
    this.settled = true;
    this.clearTimer();
    this.owner.settled();
  }

  private clearTimer(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  /**
   * BODY_TIMEOUT: polls the client socket's byte count rather than listening
   * to the body stream (a second `data` listener would change how undici
   * reads it, and costs a call per chunk). Time the body is not being read —
   * not yet, or paused because the downstream is slow to take it — is not
   * the client's stall and does not count.
   */
  private watchBody(req: IncomingMessage): void {
    if (req.complete) return;
    this.bodyBytesSeen = req.socket.bytesRead;
    this.bodyQuietSince = performance.now();
    this.timer = setTimeout(this.checkBody, this.owner.bodyCheckMs);
  }

  private readonly checkBody = (): void => {
    const req = this.body!;
    if (this.settled || this.detached || req.complete) {
      this.timer = null;
      return;
    }
    const now = performance.now();
    const read = req.socket.bytesRead;
    if (read !== this.bodyBytesSeen || req.readableFlowing !== true) {
      this.bodyBytesSeen = read;
      this.bodyQuietSince = now;
    } else if (now - this.bodyQuietSince >= this.owner.options.requestBodyTimeoutMs) {
      this.timer = null;
      this.bodyStalled();
      return;
    }
    this.timer?.refresh();
  };

  private bodyStalled(): void {
    this.detached = true;
    this.owner.metrics.downstreamError('body_timeout');
    if (this.res.headersSent) {
      // Mid-response (a full-duplex exchange): no status can be sent any more.
      this.abortDownstream?.(DONE_WITH_CLIENT);
      this.res.destroy();
      return;
    }
    // The downstream is aborted by `onClientClose` once this answer is out
    // and the connection closes (Connection: close): aborting first would
    // destroy the request stream, and the socket with it, before the 408.
    sendError(this.res, 'request_timeout', 'The request body stopped arriving; it was not forwarded.', true);
  }
}

/** Sets each of `pairs` in the flat header list `headers`, dropping entries of the same names. */
export function replaceHeaders(headers: string[], pairs: readonly string[]): void {
  let w = 0;
  for (let i = 0; i < headers.length; i += 2) {
    const lower = headers[i]!.toLowerCase();
    let replaced = false;
    for (let j = 0; j < pairs.length; j += 2) {
      if (pairs[j] === lower) {
        replaced = true;
        break;
      }
    }
    if (replaced) continue;
    headers[w++] = headers[i]!;
    headers[w++] = headers[i + 1]!;
  }
  headers.length = w;
  for (let j = 0; j < pairs.length; j++) headers.push(pairs[j]!);
}

/** A header name or value as latin1 text (undici gives Buffers, KeyPin's client strings). */
function latin1(b: Buffer | string): string {
  return typeof b === 'string' ? b : b.toString('latin1');
}

/**
 * Downstream response headers as a flat [name, value, …] list, without
 * hop-by-hop headers (and those named in Connection). Bytes are kept as
 * latin1 so header values pass through unchanged.
 */
export function filterResponseHeaders(raw: readonly (Buffer | string)[]): string[] {
  const out: string[] = [];
  let named: Set<string> | null = null;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = latin1(raw[i]!);
    const lower = name.toLowerCase();
    if (HOP_BY_HOP_HEADERS.has(lower)) {
      if (lower === 'connection') {
        for (const t of latin1(raw[i + 1]!).split(',')) {
          const token = t.trim().toLowerCase();
          if (token !== '') (named ??= new Set()).add(token);
        }
      }
      continue;
    }
    out.push(name, latin1(raw[i + 1]!));
  }
  if (named === null) return out;
  const kept: string[] = [];
  for (let i = 0; i < out.length; i += 2) {
    if (!named.has(out[i]!.toLowerCase())) kept.push(out[i]!, out[i + 1]!);
  }
  return kept;
}
