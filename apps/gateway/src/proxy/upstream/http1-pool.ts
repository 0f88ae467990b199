import { connect as netConnect, isIP, type Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { ResponseParser, type ResponseSink } from './response-parser';
import { UpstreamError } from './upstream-error';

/**
 * A small HTTP/1.1 client for KeyPin's upstream hop: a pool of keep-alive
 * connections to one origin, one request at a time per connection, with the
 * same handler protocol as undici's `dispatch` (what `forwarder.ts` uses).
 *
 * Why not undici: on this hop undici's generality (pipelining, HTTP/2,
 * interceptors, a WASM parser behind a copy) is most of the proxy's CPU per
 * request. This client does only what the forwarder needs, keeps undici's
 * protections (strict parsing, idle-socket validation before reuse, no reuse
 * after anything doubtful, timeouts), and allocates little per request: the
 * head is one string, socket and body listeners are bound once per
 * connection, timers are per connection and re-armed with `refresh()`.
 *
 * Invariant: every `dispatch` ends in exactly one of `onComplete` and
 * `onError` (the forwarder counts in-flight requests by it) — whether the
 * request was refused, queued, aborted, timed out, or the pool was closed.
 */

export interface UpstreamTlsOptions {
  /** Verify the upstream's certificate (default true). */
  rejectUnauthorized?: boolean;
  /** Trusted CA certificates (PEM) instead of Node's bundle. */
  ca?: string | Buffer | Array<string | Buffer>;
}

export interface UpstreamPoolOptions {
  /** TCP (and TLS) connect limit; 0 = none. */
  connectTimeoutMs: number;
  /**
   * From the request head written to the response head complete; 0 = none.
   * While the request body is still coming from the caller (and the
   * upstream is taking it), that wait is the caller's and is not counted:
   * the clock restarts when the body is sent, as undici does.
   */
  headersTimeoutMs: number;
  /** Longest silence between response body chunks (not counting time the consumer paused); 0 = none. */
  bodyTimeoutMs: number;
  /**
   * Idle connections are closed after this; a response's `Keep-Alive:
   * timeout=N` shortens it to N s - 1 s. 0 = connections are not kept idle.
   */
  keepAliveTimeoutMs: number;
  /** Connections at most (0 = unlimited); further requests wait in FIFO order. */
  maxConnections: number;
  /** For https: origins. */
  tls?: UpstreamTlsOptions;
  /** Largest response head (and trailer section) accepted, in bytes (default 16 KiB, as Node and undici). */
  maxHeaderBytes?: number;
}

export interface UpstreamRequest {
  method: string;
  /** Origin-form target ("/v1/models?x=1") or "*". */
  path: string;
  /** Flat [name, value, …]: written as given (after validation), in order. */
  headers: string[];
  body: Readable | Buffer | null;
}

export interface UpstreamHandler {
  /**
   * A connection is ready and nothing is written yet. `abort(err)` cancels
   * the request at any later time: the connection is destroyed and
   * `onError(err)` follows (unless the request had already ended).
   */
  onConnect(abort: (err?: Error) => void): void;
  /** The request body (if any) has been written entirely. */
  onRequestSent?(): void;
  /** The final response head (1xx are not reported). Return false to pause reading until `resume()`. */
  onHeaders(statusCode: number, headers: string[], resume: () => void, statusText: string): boolean;
  /** Response body bytes. Return false to pause reading until `resume()`. */
  onData(chunk: Buffer): boolean;
  onComplete(): void;
  onError(err: Error & { code?: string }): void;
}

/** 16 KiB: Node's and undici's default limit for a response head. */
const DEFAULT_MAX_HEADER_BYTES = 16 * 1024;

// ---- Request heads ------------------------------------------------------------------------------

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** A request-target byte that could end or split the request line (space, CTLs, DEL) or is not a byte. */
const PATH_FORBIDDEN = /[^\x21-\x7e\x80-\xff]/;
/** A field-value character outside HTAB / SP / VCHAR / obs-text: CR, LF and NUL among them (as undici). */
const VALUE_FORBIDDEN = /[^\t\x20-\x7e\x80-\xff]/;
const DIGITS = /^[0-9]+$/;

/**
 * Header fields the caller may not send: this client frames the message and
 * manages the connection itself, and a forwarded hop-by-hop field here
 * would be request smuggling (TE/CL), a protocol switch, or a 100-continue
 * wait the client cannot honour.
 */
function isReservedField(lower: string): boolean {
  return (
    lower === 'connection' ||
    lower === 'transfer-encoding' ||
    lower === 'keep-alive' ||
    lower === 'upgrade' ||
    lower === 'te' ||
    lower === 'expect'
  );
}

/** Methods whose requests normally carry a body: without one they say so (`content-length: 0`). */
function expectsBody(method: string): boolean {
  return method === 'POST' || method === 'PUT' || method === 'PATCH';
}

function invalid(message: string): UpstreamError {
  return new UpstreamError('UPSTREAM_INVALID_REQUEST', message);
}

/** One request through the pool, from `dispatch` to its single `onComplete` / `onError`. */
class Dispatch {
  /** The connection writing it / reading its response. */
  conn: Connection | null = null;
  settled = false;
  /** The request head, validated, ready to write (latin1). */
  head = '';
  /** Body bytes to send: for a stream, -1 = chunked. */
  bodyLength = 0;
  readonly headRequest: boolean;
  // The two functions the handler protocol hands out: closures are unavoidable here.
  readonly abort = (err?: Error): void => {
    if (this.settled) return;
    const err2 = err ?? new UpstreamError('UPSTREAM_ABORTED', 'upstream request aborted');
    if (this.conn !== null) this.conn.failActive(err2);
    else this.fail(err2);
  };
  readonly resume = (): void => {
    this.conn?.resumeReading(this);
  };

  constructor(
    readonly req: UpstreamRequest,
    readonly handler: UpstreamHandler,
  ) {
    this.headRequest = req.method === 'HEAD';
  }

  /**
   * Validates the request and builds its head, or returns why it cannot be
   * sent. Everything the caller gives ends up in the head: this is a
   * header-injection boundary.
   */
  prepare(hostLine: string): UpstreamError | null {
    const { method, path, headers, body } = this.req;
    if (!TOKEN.test(method)) return invalid('invalid request method');
    if (path !== '*' && (path.charCodeAt(0) !== 47 || PATH_FORBIDDEN.test(path))) {
      return invalid('invalid request path');
    }
    if ((headers.length & 1) !== 0) return invalid('odd number of header entries');
    let fields = '';
    let host = false;
    let contentLength = -1;
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!;
      const value = headers[i + 1]!;
      if (!TOKEN.test(name)) return invalid('invalid header name');
      if (VALUE_FORBIDDEN.test(value)) return invalid(`invalid value for header ${name}`);
      // Only these lengths can be a field this client treats specially.
      switch (name.length) {
        case 2:
        case 6:
        case 7:
        case 10:
        case 17:
          if (isReservedField(name.toLowerCase())) return invalid(`header ${name} is not allowed`);
          break;
        case 4:
          if (name.toLowerCase() === 'host') {
            if (host) return invalid('more than one Host header');
            host = true;
          }
          break;
        case 14:
          if (name.toLowerCase() === 'content-length') {
            if (contentLength !== -1) return invalid('more than one Content-Length header');
            if (!DIGITS.test(value)) return invalid('invalid Content-Length');
            contentLength = Number(value);
            if (!Number.isSafeInteger(contentLength)) return invalid('invalid Content-Length');
          }
          break;
      }
      fields += name + ': ' + value + '\r\n';
    }
    if (body === null) {
      if (contentLength > 0) return invalid('Content-Length without a body');
      if (contentLength === -1 && expectsBody(method)) fields += 'content-length: 0\r\n';
      this.bodyLength = 0;
    } else if (Buffer.isBuffer(body)) {
      if (contentLength !== -1 && contentLength !== body.length) {
        return invalid('Content-Length does not match the body');
      }
      if (contentLength === -1 && (body.length > 0 || expectsBody(method))) {
        fields += 'content-length: ' + body.length + '\r\n';
      }
      this.bodyLength = body.length;
    } else if (contentLength === -1) {
      fields += 'transfer-encoding: chunked\r\n';
      this.bodyLength = -1;
    } else {
      this.bodyLength = contentLength;
    }
    this.head =
      method +
      ' ' +
      path +
      ' HTTP/1.1\r\n' +
      (host ? '' : hostLine) +
      fields +
      'connection: keep-alive\r\n\r\n';
    return null;
  }

  fail(err: Error): void {
    if (this.settled) return;
    this.settled = true;
    this.conn = null;
    this.handler.onError(err);
  }

  complete(): void {
    if (this.settled) return;
    this.settled = true;
    this.conn = null;
    this.handler.onComplete();
  }
}

// ---- Connections --------------------------------------------------------------------------------

// Connection phases. Timers check the phase when they fire instead of being
// cleared on every transition (a cleared timer cannot be re-armed by refresh()).
const P_CONNECTING = 0;
const P_IDLE = 1;
/** Handed a request, waiting one event-loop turn to see whether the idle socket is still sound. */
const P_RESERVED = 2;
/** Request written (or being written), response head not complete. */
const P_HEADERS = 3;
const P_BODY = 4;
const P_CLOSED = 5;

const ERR_CLOSED_BEFORE_COMPLETE = 'upstream closed the connection before the response was complete';

class Connection implements ResponseSink {
  readonly socket: Socket;
  readonly parser: ResponseParser;
  phase = P_CONNECTING;
  /** The request being written / answered. */
  dispatch: Dispatch | null = null;
  /** The request waiting for this connection's validation (P_RESERVED). */
  reserved: Dispatch | null = null;
  /** How long this connection may stay idle, from the last response. */
  idleMs: number;
  /** The pool's validation generation when this connection was last released (see UpstreamPool.reserve). */
  releasedGen = -1;
  private socketError: Error | null = null;
  private refed = true;

  private connectTimer: NodeJS.Timeout | null = null;
  private headersTimer: NodeJS.Timeout | null = null;
  private bodyTimer: NodeJS.Timeout | null = null;
  private idleTimer: NodeJS.Timeout | null = null;
  private idleTimerMs = 0;

  // Reading: the consumer's backpressure.
  private readPaused = false;
  /** Bytes read but not parsed while paused. */
  private pending: Buffer | null = null;
  private inExecute = false;
  private resumeRequested = false;

  // Writing a streamed request body.
  private body: Readable | null = null;
  private bodyRemaining = 0;
  private bodyChunked = false;
  private bodyWaitingDrain = false;
  /** The body stream closed; its error, if one comes, is awaited for one microtask. */
  private closedBody: Readable | null = null;
  /** The whole request has been written. */
  private bodySent = false;

  constructor(readonly pool: UpstreamPool) {
    const o = pool.target;
    this.parser = new ResponseParser(this, pool.maxHeaderBytes);
    this.idleMs = pool.options.keepAliveTimeoutMs;
    this.socket = o.secure
      ? tlsConnect({
          host: o.host,
          port: o.port,
          servername: o.servername,
          rejectUnauthorized: pool.options.tls?.rejectUnauthorized ?? true,
          ca: pool.options.tls?.ca,
          ALPNProtocols: ['http/1.1'],
        })
      : netConnect({ host: o.host, port: o.port });
    const s = this.socket;
    s.setNoDelay(true);
    s.setKeepAlive(true, 60_000);
    s.once(o.secure ? 'secureConnect' : 'connect', this.onSocketConnect);
    s.on('data', this.onSocketData);
    s.on('end', this.onSocketEnd);
    s.on('error', this.onSocketError);
    s.on('close', this.onSocketClose);
    s.on('drain', this.onSocketDrain);
    if (pool.options.connectTimeoutMs > 0) {
      this.connectTimer = setTimeout(this.onConnectTimeout, pool.options.connectTimeoutMs);
    }
  }

  // ---- Writing a request

  /** Writes `d` on this (connected, sound) connection. */
  start(d: Dispatch): void {
    this.phase = P_HEADERS;
    this.dispatch = d;
    d.conn = this;
    if (!this.refed) {
      this.socket.ref();
      this.refed = true;
    }
    try {
      d.handler.onConnect(d.abort);
    } catch (err) {
      d.abort(err as Error);
    }
    if (this.dispatch !== d) return; // aborted in onConnect: nothing was written
    this.parser.reset(d.headRequest);
    const body = d.req.body;
    const head = d.head;
    d.head = '';
    this.bodySent = false;
    if (body === null) {
      this.socket.write(head, 'latin1');
      this.bodySent = true;
    } else if (Buffer.isBuffer(body)) {
      // Head and body leave in one write.
      this.socket.cork();
      this.socket.write(head, 'latin1');
      if (body.length > 0) this.socket.write(body);
      this.socket.uncork();
      this.bodySent = true;
    } else {
      this.socket.write(head, 'latin1');
    }
    this.armHeadersTimer();
    if (this.bodySent) this.requestSent(d);
    else this.writeStream(body as Readable, d.bodyLength);
  }

  private requestSent(d: Dispatch): void {
    if (d.handler.onRequestSent === undefined) return;
    try {
      d.handler.onRequestSent();
    } catch (err) {
      d.abort(err as Error);
    }
  }

  private writeStream(body: Readable, length: number): void {
    this.body = body;
    this.bodyRemaining = length;
    this.bodyChunked = length < 0;
    this.bodyWaitingDrain = false;
    if (body.readableEnded) {
      // Its end was emitted already: nothing more will come.
      this.onBodyEnd();
      return;
    }
    if (body.errored !== null || body.destroyed) {
      this.failActive(
        new UpstreamError(
          'UPSTREAM_REQUEST_BODY',
          'request body stream already failed',
          body.errored ?? undefined,
        ),
      );
      return;
    }
    body.on('data', this.onBodyData);
    body.on('end', this.onBodyEnd);
    body.on('error', this.onBodyError);
    body.on('close', this.onBodyClose);
    body.resume();
  }

  private readonly onBodyData = (data: Buffer | string): void => {
    if (this.body === null) return;
    const chunk = typeof data === 'string' ? Buffer.from(data) : data;
    let ok: boolean;
    if (!this.bodyChunked) {
      if (chunk.length > this.bodyRemaining) {
        this.failActive(
          new UpstreamError('UPSTREAM_REQUEST_BODY', 'request body longer than its Content-Length'),
        );
        return;
      }
      this.bodyRemaining -= chunk.length;
      ok = this.socket.write(chunk);
    } else {
      if (chunk.length === 0) return; // a zero-size chunk would end the body
      this.socket.cork();
      this.socket.write(chunk.length.toString(16) + '\r\n', 'latin1');
      this.socket.write(chunk);
      ok = this.socket.write('\r\n', 'latin1');
      this.socket.uncork();
    }
    if (!ok) {
      // The upstream is slower than the caller: stop reading the body until the socket drains.
      this.bodyWaitingDrain = true;
      this.body.pause();
    }
  };

  private readonly onSocketDrain = (): void => {
    if (this.bodyWaitingDrain && this.body !== null) {
      this.bodyWaitingDrain = false;
      this.body.resume();
    }
  };

  private readonly onBodyEnd = (): void => {
    const d = this.dispatch;
    if (this.body === null || d === null) return;
    if (!this.bodyChunked && this.bodyRemaining !== 0) {
      this.failActive(
        new UpstreamError('UPSTREAM_REQUEST_BODY', 'request body shorter than its Content-Length'),
      );
      return;
    }
    if (this.bodyChunked) this.socket.write('0\r\n\r\n', 'latin1');
    this.detachBody();
    this.bodySent = true;
    // The headers clock starts over now that the upstream has the whole request.
    if (this.phase === P_HEADERS) this.headersTimer?.refresh();
    this.requestSent(d);
  };

  private readonly onBodyError = (err: Error): void => {
    if (this.body === null) return;
    this.failActive(
      new UpstreamError('UPSTREAM_REQUEST_BODY', `request body stream failed: ${err.message}`, err),
    );
  };

  private readonly onBodyClose = (): void => {
    // Some streams emit 'close' before 'error': give the error a microtask
    // to arrive (and be reported) before calling this a premature close.
    this.closedBody = this.body;
    queueMicrotask(this.bodyClosedEarly);
  };

  private readonly bodyClosedEarly = (): void => {
    if (this.body === null || this.body !== this.closedBody) return;
    this.failActive(new UpstreamError('UPSTREAM_REQUEST_BODY', 'request body closed before its end'));
  };

  /**
   * Stops writing the request body and lets go of the stream. It belongs to
   * the caller (it is the client's request) and outlives this request: it is
   * not destroyed, but left flowing so the rest is read and dropped (as
   * Node's server does with an unread body) rather than stalling the
   * client's connection.
   */
  private detachBody(): void {
    const b = this.body;
    if (b === null) return;
    this.body = null;
    this.closedBody = null;
    b.off('data', this.onBodyData);
    b.off('end', this.onBodyEnd);
    b.off('error', this.onBodyError);
    b.off('close', this.onBodyClose);
    if (this.bodyWaitingDrain) {
      this.bodyWaitingDrain = false;
      if (!b.destroyed) b.resume();
    }
  }

  // ---- Reading the response

  private readonly onSocketData = (buf: Buffer): void => {
    if (this.readPaused) {
      // Should not happen (the socket is paused), but never lose bytes.
      this.pending = this.pending === null ? buf : Buffer.concat([this.pending, buf]);
      return;
    }
    this.feed(buf);
  };

  private feed(buf: Buffer): void {
    const d = this.dispatch;
    if (d === null || this.phase < P_HEADERS) {
      // Bytes nobody asked for on an idle connection: whatever they are, the
      // next response read here could be them. Never reuse it.
      this.discard();
      return;
    }
    this.inExecute = true;
    const n = this.parser.execute(buf);
    this.inExecute = false;
    if (this.dispatch !== d) return; // aborted or destroyed in a callback
    const parser = this.parser;
    if (parser.failed) {
      this.failActive(parser.error!);
    } else if (parser.done) {
      this.responseDone(d, n < buf.length);
    } else {
      if (parser.headComplete) this.phase = P_BODY;
      if (parser.paused) {
        this.readPaused = true;
        this.pending = n < buf.length ? buf.subarray(n) : null;
        this.socket.pause();
      } else if (this.phase === P_BODY) {
        this.armBodyTimer();
      }
    }
  }

  onResponseHead(statusCode: number, headers: string[], statusText: string): boolean {
    const d = this.dispatch!;
    this.resumeRequested = false;
    let ok: boolean;
    try {
      ok = d.handler.onHeaders(statusCode, headers, d.resume, statusText);
    } catch (err) {
      d.abort(err as Error);
      return false;
    }
    return ok !== false || this.resumeRequested;
  }

  onResponseData(chunk: Buffer): boolean {
    const d = this.dispatch!;
    this.resumeRequested = false;
    let ok: boolean;
    try {
      ok = d.handler.onData(chunk);
    } catch (err) {
      d.abort(err as Error);
      return false;
    }
    return ok !== false || this.resumeRequested;
  }

  /** The consumer's `resume()`: a no-op unless `d` is still this connection's paused request. */
  resumeReading(d: Dispatch): void {
    if (this.dispatch !== d) return;
    if (this.inExecute) {
      // Called from inside onHeaders/onData: the parser has not paused yet.
      this.resumeRequested = true;
      return;
    }
    if (!this.readPaused) return;
    this.readPaused = false;
    this.parser.paused = false;
    const pending = this.pending;
    this.pending = null;
    if (pending !== null) {
      this.feed(pending);
      if (this.dispatch !== d || this.readPaused) return;
    }
    this.socket.resume();
    if (this.phase === P_BODY) this.armBodyTimer();
  }

  private responseDone(d: Dispatch, extraBytes: boolean): void {
    let idleMs = this.pool.options.keepAliveTimeoutMs;
    const advertised = this.parser.keepAliveTimeoutMs;
    if (advertised >= 0) idleMs = Math.min(idleMs, advertised - 1000);
    const reusable =
      !extraBytes && // bytes beyond the response: never parse them as the next one
      this.parser.keepAlive &&
      this.bodySent && // an early response: the rest of the request would be read as a new one
      !d.headRequest && // as undici: a server may send a body to HEAD anyway
      idleMs > 0;
    this.detachBody();
    this.dispatch = null;
    if (this.readPaused) {
      this.readPaused = false;
      this.pending = null;
      this.socket.resume();
    }
    if (reusable) {
      this.idleMs = idleMs;
      this.pool.release(this);
    } else {
      this.destroy();
      this.pool.pump();
    }
    d.complete();
  }

  private readonly onSocketEnd = (): void => {
    const d = this.dispatch;
    if (d === null) {
      this.discard();
      return;
    }
    if (this.parser.finish()) this.responseDone(d, false);
    else this.failActive(new UpstreamError('UPSTREAM_SOCKET', ERR_CLOSED_BEFORE_COMPLETE));
  };

  private readonly onSocketError = (err: Error): void => {
    this.socketError ??= err;
  };

  private readonly onSocketClose = (): void => {
    if (this.phase === P_CLOSED) return; // closed by this client: already handled
    const phase = this.phase;
    const err = this.socketError;
    if (phase === P_CONNECTING) {
      this.destroy();
      this.pool.connectFailed(
        err ?? new UpstreamError('UPSTREAM_SOCKET', 'connection closed while connecting'),
      );
    } else if (this.dispatch !== null) {
      this.failActive(
        new UpstreamError(
          'UPSTREAM_SOCKET',
          err === null ? ERR_CLOSED_BEFORE_COMPLETE : `upstream connection failed: ${err.message}`,
          err ?? undefined,
        ),
      );
    } else {
      this.discard();
    }
  };

  private readonly onSocketConnect = (): void => {
    if (this.phase !== P_CONNECTING) return;
    if (this.connectTimer !== null) {
      clearTimeout(this.connectTimer);
      this.connectTimer = null;
    }
    this.phase = P_IDLE;
    this.pool.connected(this);
  };

  // ---- Ending

  /** Ends the active request with `err` and destroys the connection. */
  failActive(err: Error): void {
    const d = this.dispatch;
    this.dispatch = null;
    this.destroy();
    this.pool.pump();
    d?.fail(err);
  }

  /**
   * Closes a connection that has no request in flight (idle, or reserved
   * and found unsound): a reserved request goes back to the front of the
   * queue — nothing of it was written.
   */
  private discard(): void {
    const r = this.reserved;
    this.reserved = null;
    this.destroy();
    if (r !== null && !r.settled) this.pool.requeueFront(r);
    this.pool.pump();
  }

  /** Ends whatever this connection carries with `err` (pool destroyed). */
  shutdown(err: Error): void {
    const d = this.dispatch ?? this.reserved;
    this.dispatch = null;
    this.reserved = null;
    this.destroy();
    d?.fail(err);
  }

  /** Closes the socket for good. Does not settle any request. */
  destroy(): void {
    const phase = this.phase;
    if (phase === P_CLOSED) return;
    this.phase = P_CLOSED;
    this.parser.halt();
    this.detachBody();
    this.pending = null;
    if (this.connectTimer !== null) clearTimeout(this.connectTimer);
    if (this.headersTimer !== null) clearTimeout(this.headersTimer);
    if (this.bodyTimer !== null) clearTimeout(this.bodyTimer);
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    this.pool.forget(this, phase);
    this.socket.destroy();
  }

  // ---- Idle

  /** Parks the connection: unref'd (an idle pool does not keep the process alive), closed after `idleMs`. */
  goIdle(): void {
    this.phase = P_IDLE;
    if (this.refed) {
      this.socket.unref();
      this.refed = false;
    }
    const ms = this.idleMs;
    if (this.idleTimer !== null && this.idleTimerMs === ms) {
      this.idleTimer.refresh();
    } else {
      if (this.idleTimer !== null) clearTimeout(this.idleTimer);
      this.idleTimer = setTimeout(this.onIdleTimeout, ms).unref();
      this.idleTimerMs = ms;
    }
  }

  reserve(d: Dispatch): void {
    this.phase = P_RESERVED;
    this.reserved = d;
  }

  /** After the validation turn: write the reserved request if the socket is still sound. */
  validated(): void {
    const d = this.reserved;
    if (d === null || this.phase !== P_RESERVED) return;
    this.reserved = null;
    if (d.settled) this.pool.release(this);
    else this.start(d);
  }

  // ---- Timers: one per purpose and connection, re-armed with refresh()

  private armHeadersTimer(): void {
    const ms = this.pool.options.headersTimeoutMs;
    if (ms === 0) return;
    if (this.headersTimer === null) this.headersTimer = setTimeout(this.onHeadersTimeout, ms).unref();
    else this.headersTimer.refresh();
  }

  private armBodyTimer(): void {
    const ms = this.pool.options.bodyTimeoutMs;
    if (ms === 0) return;
    if (this.bodyTimer === null) this.bodyTimer = setTimeout(this.onBodyTimeout, ms).unref();
    else this.bodyTimer.refresh();
  }

  private readonly onConnectTimeout = (): void => {
    this.connectTimer = null;
    if (this.phase !== P_CONNECTING) return;
    this.destroy();
    this.pool.connectFailed(
      new UpstreamError(
        'UPSTREAM_CONNECT_TIMEOUT',
        `connecting to the upstream took longer than ${this.pool.options.connectTimeoutMs} ms`,
      ),
    );
  };

  private readonly onHeadersTimeout = (): void => {
    if (this.phase !== P_HEADERS) return;
    if (!this.bodySent && !this.socket.writableNeedDrain) {
      // Still waiting for the caller's body, which the upstream is taking:
      // not the upstream's delay. Look again later.
      this.headersTimer!.refresh();
      return;
    }
    this.failActive(
      new UpstreamError(
        'UPSTREAM_HEADERS_TIMEOUT',
        `the upstream sent no response head within ${this.pool.options.headersTimeoutMs} ms`,
      ),
    );
  };

  private readonly onBodyTimeout = (): void => {
    // Paused by the consumer: the silence is ours; resume() re-arms.
    if (this.phase !== P_BODY || this.readPaused) return;
    this.failActive(
      new UpstreamError(
        'UPSTREAM_BODY_TIMEOUT',
        `the upstream response body stalled for ${this.pool.options.bodyTimeoutMs} ms`,
      ),
    );
  };

  private readonly onIdleTimeout = (): void => {
    if (this.phase === P_IDLE) this.discard();
  };
}

// ---- The pool -----------------------------------------------------------------------------------

interface Target {
  secure: boolean;
  /** Host to connect to (IPv6 without brackets). */
  host: string;
  port: number;
  /** SNI name; undefined for IP literals (SNI does not carry addresses). */
  servername: string | undefined;
}

export class UpstreamPool {
  readonly target: Target;
  readonly maxHeaderBytes: number;
  /** `host: …\r\n` for requests that bring none. */
  private readonly hostLine: string;
  private readonly conns = new Set<Connection>();
  /** Idle connections, most recently used last (taken first: the others can time out). */
  private readonly idle: Connection[] = [];
  private connecting = 0;
  /** Requests waiting for a connection, FIFO from `queueHead`. */
  private queue: (Dispatch | undefined)[] = [];
  private queueHead = 0;
  /** Reserved connections waiting for the shared validation turn. */
  private validating: Connection[] = [];
  private validatingNext: Connection[] = [];
  private validationScheduled = false;
  /** Advanced by each validation turn: tells connections released since the last one. */
  private generation = 0;
  private closing = false;
  private destroyed = false;
  private closeWaiters: (() => void)[] = [];

  constructor(
    origin: URL | string,
    readonly options: UpstreamPoolOptions,
  ) {
    const url = typeof origin === 'string' ? new URL(origin) : origin;
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new TypeError(`unsupported upstream protocol ${url.protocol}`);
    }
    const secure = url.protocol === 'https:';
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    this.target = {
      secure,
      host,
      port: url.port === '' ? (secure ? 443 : 80) : Number(url.port),
      servername: isIP(host) === 0 ? host : undefined,
    };
    // URL.host carries the port only when it is not the scheme's default.
    this.hostLine = 'host: ' + url.host + '\r\n';
    this.maxHeaderBytes = options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
  }

  dispatch(req: UpstreamRequest, handler: UpstreamHandler): void {
    if (this.closing) {
      handler.onError(new UpstreamError('UPSTREAM_CLOSED', 'the upstream pool is closed'));
      return;
    }
    const d = new Dispatch(req, handler);
    const err = d.prepare(this.hostLine);
    if (err !== null) {
      d.fail(err);
      return;
    }
    this.queue.push(d);
    this.pump();
  }

  /** Stops accepting requests; resolves once queued and in-flight ones are done and every socket is closed. */
  close(): Promise<void> {
    this.closing = true;
    for (const conn of this.idle.slice()) conn.destroy();
    return this.whenEmpty();
  }

  /** Fails everything queued or in flight with UPSTREAM_CLOSED and closes every socket. */
  destroy(): Promise<void> {
    this.closing = true;
    this.destroyed = true;
    const err = new UpstreamError('UPSTREAM_CLOSED', 'the upstream pool was destroyed');
    while (this.queueLength > 0) this.dequeue().fail(err);
    for (const conn of Array.from(this.conns)) conn.shutdown(err);
    return this.whenEmpty();
  }

  private whenEmpty(): Promise<void> {
    if (this.conns.size === 0 && this.queueLength === 0) return Promise.resolve();
    return new Promise((resolve) => this.closeWaiters.push(resolve));
  }

  // ---- Internal (used by Connection)

  private get queueLength(): number {
    return this.queue.length - this.queueHead;
  }

  private dequeue(): Dispatch {
    const d = this.queue[this.queueHead]!;
    this.queue[this.queueHead++] = undefined;
    if (this.queueHead === this.queue.length) {
      this.queue.length = 0;
      this.queueHead = 0;
    }
    return d;
  }

  requeueFront(d: Dispatch): void {
    if (this.queueHead > 0) this.queue[--this.queueHead] = d;
    else this.queue.unshift(d);
  }

  /** Matches waiting requests with idle connections and opens connections for the rest. */
  pump(): void {
    if (this.destroyed) return;
    while (this.queueLength > 0 && this.idle.length > 0) {
      this.reserve(this.idle.pop()!, this.dequeue());
    }
    const max = this.options.maxConnections;
    while (this.queueLength > this.connecting && (max === 0 || this.conns.size < max)) {
      this.conns.add(new Connection(this));
      this.connecting++;
    }
    this.checkClosed();
  }

  /**
   * `conn` has been idle (or just finished a response): before writing on
   * it, let the event loop show what is already waiting on the socket — a
   * FIN, a reset, unsolicited bytes — so the request goes elsewhere instead
   * (undici's GHSA-35p6-xmwp-9g52 protection).
   *
   * One setImmediate serves every connection reserved in the same turn. A
   * connection released in this very turn waits one turn more: libuv stops
   * reading a socket after a short read, so a FIN right behind the response
   * is only read in the next poll phase, after this turn's check phase.
   */
  private reserve(conn: Connection, d: Dispatch): void {
    conn.reserve(d);
    this.validating.push(conn);
    this.scheduleValidation();
  }

  private scheduleValidation(): void {
    if (this.validationScheduled) return;
    this.validationScheduled = true;
    setImmediate(this.runValidation);
  }

  private readonly runValidation = (): void => {
    this.validationScheduled = false;
    const gen = this.generation++;
    const list = this.validating;
    this.validating = this.validatingNext;
    this.validatingNext = list;
    for (let i = 0; i < list.length; i++) {
      const conn = list[i]!;
      if (conn.releasedGen === gen) {
        // Released since the last turn: no poll phase has read behind its response yet.
        this.validating.push(conn);
        this.scheduleValidation();
      } else {
        conn.validated();
      }
    }
    list.length = 0;
    this.pump();
  };

  /** A fresh connection is up: it serves the oldest waiting request at once (nothing can be pending on it). */
  connected(conn: Connection): void {
    this.connecting--;
    if (this.queueLength > 0) conn.start(this.dequeue());
    else this.release(conn);
  }

  /** A connect attempt failed: the oldest waiting request not covered by another attempt fails with it. */
  connectFailed(err: Error): void {
    if (this.queueLength > this.connecting) this.dequeue().fail(err);
    this.pump();
  }

  /** `conn` is sound and free. */
  release(conn: Connection): void {
    conn.releasedGen = this.generation;
    if (this.queueLength > 0) this.reserve(conn, this.dequeue());
    else if (this.closing || conn.idleMs <= 0) {
      conn.destroy();
      this.checkClosed();
    } else {
      conn.goIdle();
      this.idle.push(conn);
      // Close the generation at this turn's end, so that a request for this
      // connection in a later turn needs only one yield.
      this.scheduleValidation();
    }
  }

  /** `conn` is closed: drop it from every list. */
  forget(conn: Connection, phase: number): void {
    this.conns.delete(conn);
    if (phase === P_CONNECTING) this.connecting--;
    else if (phase === P_IDLE) {
      const i = this.idle.lastIndexOf(conn);
      if (i !== -1) this.idle.splice(i, 1);
    }
  }

  private checkClosed(): void {
    if (!this.closing || this.conns.size !== 0 || this.queueLength !== 0) return;
    const waiters = this.closeWaiters;
    this.closeWaiters = [];
    for (const w of waiters) w();
  }
}
