import type { IncomingMessage, ServerResponse } from 'node:http';
import { Pool } from 'undici';
import type { Dispatcher } from 'undici';
import type { Logger } from 'pino';
import type { MetricsService } from '../infra/metrics/metrics.service';
import { RateLimitedLog } from '../infra/rate-limited-log';
import { sendError } from './responses';

export interface ForwarderOptions {
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
}

/** Response headers that never cross a proxy. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT']);

/**
 * Streams a request to the downstream and its response back, through one
 * long-lived undici pool, with backpressure both ways and no buffering.
 * Uses undici's `dispatch` with a small handler object per request.
 */
export class Forwarder {
  readonly pool: Pool;
  private readonly basePath: string;
  readonly origin: string;
  private readonly failureLog: RateLimitedLog;

  constructor(
    readonly downstream: URL,
    private readonly options: ForwarderOptions,
    private readonly metrics: MetricsService,
    private readonly logger: Logger,
  ) {
    this.origin = downstream.origin;
    this.failureLog = new RateLimitedLog(logger, 'downstream request failed');
    this.basePath = downstream.pathname.replace(/\/+$/, '');
    this.pool = new Pool(this.origin, {
      connect: { timeout: options.connectTimeoutMs },
      headersTimeout: options.headersTimeoutMs,
      bodyTimeout: options.bodyTimeoutMs,
      keepAliveTimeout: 30_000,
      pipelining: 1,
    });
  }

  /** The downstream path for a client request target. */
  pathFor(url: string): string {
    return this.basePath === '' ? url : this.basePath + url;
  }

  /**
   * Forwards `req` with `headers` (already stripped of hop-by-hop headers and
   * carrying KeyPin's X-Real-IP / X-Forwarded-For).
   */
  forward(req: IncomingMessage, res: ServerResponse, headers: string[], hasBody: boolean): void {
    const handler = new ResponseRelay(res, this.metrics, this.failureLog);
    const opts: Dispatcher.DispatchOptions = {
      method: req.method as string,
      path: this.pathFor(req.url!),
      headers,
      body: hasBody ? req : null,
    };
    res.once('close', handler.onClientClose);
    this.pool.dispatch(opts, handler);
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}

function uncork(res: ServerResponse): void {
  res.uncork();
}

/** Relays one downstream response to the client (undici's handler protocol). */
class ResponseRelay {
  private abortDownstream: ((err?: Error) => void) | null = null;
  private resume: (() => void) | null = null;
  private finished = false;
  private clientGone = false;
  private readonly started = performance.now();

  constructor(
    private readonly res: ServerResponse,
    private readonly metrics: MetricsService,
    private readonly failureLog: RateLimitedLog,
  ) {}

  readonly onClientClose = (): void => {
    if (this.finished) return;
    this.clientGone = true;
    this.metrics.downstreamError('aborted');
    this.abortDownstream?.(new Error('client closed the connection'));
  };

  private readonly onDrain = (): void => {
    this.resume?.();
  };

  onConnect(abort: (err?: Error) => void): void {
    if (this.clientGone) abort(new Error('client closed the connection'));
    else this.abortDownstream = abort;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText?: string): boolean {
    if (statusCode < 200) return true; // 1xx informational: not relayed
    this.resume = resume;
    this.metrics.downstreamSeconds.observe((performance.now() - this.started) / 1000);
    const headers = filterResponseHeaders(rawHeaders);
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
    const ok = this.res.write(chunk);
    if (!ok) this.res.once('drain', this.onDrain);
    return ok;
  }

  onComplete(): void {
    this.finished = true;
    this.res.end();
  }

  onError(err: Error & { code?: string }): void {
    const wasGone = this.clientGone;
    this.finished = true;
    if (wasGone) return;
    if (this.res.headersSent) {
      // Mid-response: the status is gone already; cut the connection so the
      // client sees an incomplete response rather than a clean end.
      this.metrics.downstreamError('reset');
      this.res.destroy(err);
      return;
    }
    if (err.code !== undefined && TIMEOUT_CODES.has(err.code)) {
      this.metrics.downstreamError('timeout');
      sendError(this.res, 'gateway_timeout', 'The upstream did not answer in time.', true);
    } else {
      this.metrics.downstreamError('unreachable');
      this.failureLog.warn({ err: err.message, code: err.code });
      sendError(this.res, 'bad_gateway', 'The upstream could not be reached.', true);
    }
  }
}

/**
 * Downstream response headers as a flat [name, value, …] list, without
 * hop-by-hop headers (and those named in Connection). Bytes are kept as
 * latin1 so header values pass through unchanged.
 */
export function filterResponseHeaders(raw: Buffer[]): string[] {
  const out: string[] = [];
  let named: Set<string> | null = null;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1');
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower)) {
      if (lower === 'connection') {
        for (const t of raw[i + 1]!.toString('latin1').split(',')) {
          const token = t.trim().toLowerCase();
          if (token !== '') (named ??= new Set()).add(token);
        }
      }
      continue;
    }
    out.push(name, raw[i + 1]!.toString('latin1'));
  }
  if (named === null) return out;
  const kept: string[] = [];
  for (let i = 0; i < out.length; i += 2) {
    if (!named.has(out[i]!.toLowerCase())) kept.push(out[i]!, out[i + 1]!);
  }
  return kept;
}
