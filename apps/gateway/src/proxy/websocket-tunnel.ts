import { isIP, connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import type { MetricsService } from '../infra/metrics/metrics.service';
import { sendSocketError } from './responses';
import {
  AnswerHeadReader,
  bodyEndFor,
  bodyFramingOf,
  MAX_REFUSAL_BODY_BYTES,
  refusalHead,
  type AnswerHead,
  type BodyEnd,
} from './upgrade-answer';

/**
 * After KeyPin's last byte to a client whose connection ends, what the
 * client still sends is read and dropped for at most this long: closing
 * with unread input would make the kernel reset the connection, and the
 * client could lose the answer it has not read yet.
 */
const CLIENT_LINGER_MS = 5_000;

/**
 * Tunnels an already-judged WebSocket upgrade: opens a connection to the
 * downstream and replays the request head (filtered headers). Only a
 * `101 Switching Protocols` answer opens the tunnel (bytes piped both
 * ways); any other answer is relayed to the client with `Connection: close`
 * and both connections end (docs/contract.md 2.4).
 */
export class WebSocketTunnel {
  private readonly port: number;
  private readonly tls: boolean;
  private readonly open = new Set<Socket>();
  private readonly context: AttemptContext;

  constructor(
    private readonly downstream: URL,
    connectTimeoutMs: number,
    responseTimeoutMs: number,
    metrics: MetricsService,
    logger: Logger,
  ) {
    this.tls = downstream.protocol === 'https:';
    this.port = Number(downstream.port || (this.tls ? 443 : 80));
    this.context = { connectMs: connectTimeoutMs, answerMs: responseTimeoutMs, metrics, logger };
  }

  /** Opens the tunnel for `req` to `path` (the upstream's path and query) with `headers`. */
  tunnel(req: IncomingMessage, client: Socket, head: Buffer, headers: string[], path: string): void {
    const host = this.downstream.hostname.replace(/^\[|\]$/g, '');
    const upstream: Socket = this.tls
      ? tlsConnect({ host, port: this.port, servername: isIP(host) === 0 ? host : undefined })
      : netConnect({ host, port: this.port });
    this.open.add(upstream);
    upstream.once('close', () => this.open.delete(upstream));
    new UpgradeAttempt(client, upstream, head, req.method ?? 'GET', this.context).start(
      this.requestHead(req, headers, path),
      this.tls ? 'secureConnect' : 'connect',
    );
  }

  /** Ends every open tunnel (shutdown deadline reached). */
  closeAll(): void {
    for (const s of this.open) s.destroy();
  }

  get size(): number {
    return this.open.size;
  }

  private requestHead(req: IncomingMessage, headers: string[], path: string): string {
    const lines = [`${req.method} ${path} HTTP/1.1`, `Host: ${this.downstream.host}`];
    for (let i = 0; i + 1 < headers.length; i += 2) lines.push(`${headers[i]}: ${headers[i + 1]}`);
    lines.push('Connection: Upgrade', 'Upgrade: websocket', '', '');
    return lines.join('\r\n');
  }
}

/** What every upgrade attempt shares: time limits, metrics and the logger. */
interface AttemptContext {
  /** Connecting to the downstream (502 past it). */
  connectMs: number;
  /** From the request head sent to the answer head complete (504 past it); also the idle limit of a refusal's body. */
  answerMs: number;
  metrics: MetricsService;
  logger: Logger;
}

/**
 * - `connecting`: connecting to the downstream.
 * - `answering`: request head sent, reading the answer head.
 * - `refusing`: relaying a non-101 answer's body, then closing both sides.
 * - `tunnel`: 101 received, bytes piped both ways.
 * - `done`: over (failed, refused or cut); late events are ignored.
 */
type Phase = 'connecting' | 'answering' | 'refusing' | 'tunnel' | 'done';

/**
 * One upgrade from connect to tunnel or refusal. Until the downstream's
 * final answer is known the client socket stays paused and `held` (bytes
 * that followed the client's request head) is kept back: written to the
 * downstream before them, they would be parsed as further HTTP requests
 * that KeyPin never judged, or reach a connection the downstream reuses.
 */
class UpgradeAttempt {
  private phase: Phase = 'connecting';
  private timer: NodeJS.Timeout | undefined;
  private readonly reader = new AnswerHeadReader();
  private body: BodyEnd | null = null;
  /** The refusal's body ends when the downstream closes (no length, not chunked). */
  private bodyEndsAtClose = false;
  private relayed = 0;

  constructor(
    private readonly client: Socket,
    private readonly upstream: Socket,
    private readonly held: Buffer,
    private readonly method: string,
    private readonly context: AttemptContext,
  ) {}

  start(requestHead: string, connectedEvent: 'connect' | 'secureConnect'): void {
    // Not read again before a 101 (see the class comment); the kernel's
    // buffers hold what the client sends meanwhile, not our memory.
    this.client.pause();
    this.arm(this.context.connectMs, () => this.fail('bad_gateway', 'connect timeout'));
    this.upstream.once(connectedEvent, () => this.onConnected(requestHead));
    this.upstream.on('data', this.onUpstreamData);
    this.upstream.on('error', (err) => this.onUpstreamGone(err.message));
    this.upstream.on('close', () => this.onUpstreamGone(null));
    this.client.on('error', () => this.onClientGone());
    this.client.on('close', () => this.onClientGone());
  }

  private onConnected(requestHead: string): void {
    if (this.phase !== 'connecting') return;
    this.phase = 'answering';
    // Until the downstream answers, a silent peer is a timeout, not a hang.
    this.arm(this.context.answerMs, () => this.fail('gateway_timeout', 'no answer to the upgrade'));
    this.upstream.setNoDelay(true);
    // Header values are byte strings (one char per byte): written as
    // latin1 they reach the relay exactly as the client sent them. As UTF-8
    // a lone 0x85 would become U+0085, which Go trims away, and the relay
    // would read a key KeyPin never saw.
    this.upstream.write(requestHead, 'latin1');
  }

  private readonly onUpstreamData = (chunk: Buffer): void => {
    if (this.phase === 'answering') this.readAnswer(chunk);
    else if (this.phase === 'refusing') this.relayBody(chunk);
  };

  private readAnswer(chunk: Buffer): void {
    const progress = this.reader.push(chunk);
    if (progress.kind === 'incomplete') return;
    if (progress.kind === 'invalid') {
      this.fail('bad_gateway', progress.reason);
      return;
    }
    if (progress.head.status === 101) this.openTunnel(progress.head, progress.rest);
    else this.refuse(progress.head, progress.rest);
  }

  /** 101: the answer reaches the client, then what each side sent meanwhile, then raw bytes both ways. */
  private openTunnel(head: AnswerHead, rest: Buffer): void {
    this.phase = 'tunnel';
    this.disarm();
    // Synchronous from here to the pipes: no data event can fall between.
    this.upstream.off('data', this.onUpstreamData);
    this.client.write(head.raw);
    if (rest.length > 0) this.client.write(rest);
    if (this.held.length > 0) this.upstream.write(this.held);
    this.upstream.pipe(this.client, { end: false });
    this.client.pipe(this.upstream);
  }

  /**
   * Any other final answer: relayed to the client as one response with
   * `Connection: close`, and both connections end after its body. `held`
   * and whatever else the client sent are dropped, never written downstream.
   */
  private refuse(head: AnswerHead, rest: Buffer): void {
    const framing = bodyFramingOf(head, this.method);
    if (typeof framing === 'string') {
      this.fail('bad_gateway', framing);
      return;
    }
    this.phase = 'refusing';
    this.context.logger.debug({ status: head.status }, 'websocket upgrade refused by the downstream');
    // latin1 puts back the bytes of the relay's head as they were received.
    this.client.write(refusalHead(head), 'latin1');
    this.body = bodyEndFor(framing);
    this.bodyEndsAtClose = framing.kind === 'close';
    this.relayBody(rest);
  }

  private relayBody(chunk: Buffer): void {
    const progress = this.body!.feed(chunk);
    if ('error' in progress) {
      this.cut(progress.error);
      return;
    }
    this.relayed += progress.used;
    if (this.relayed > MAX_REFUSAL_BODY_BYTES) {
      this.cut('refusal body too large');
      return;
    }
    const part = progress.used === chunk.length ? chunk : chunk.subarray(0, progress.used);
    if (part.length > 0 && !this.client.write(part)) {
      this.upstream.pause();
      this.client.once('drain', () => this.upstream.resume());
    }
    if (progress.done) {
      this.finishRefusal();
      return;
    }
    this.arm(this.context.answerMs, () => this.cut('refusal body stalled'));
  }

  private finishRefusal(): void {
    this.phase = 'done';
    this.disarm();
    this.upstream.destroy();
    closeAfterAnswer(this.client);
  }

  private onUpstreamGone(error: string | null): void {
    this.disarm();
    switch (this.phase) {
      case 'connecting':
      case 'answering':
        this.fail('bad_gateway', error ?? 'closed without answering');
        return;
      case 'refusing':
        if (error === null && this.bodyEndsAtClose) this.finishRefusal();
        else this.cut(error ?? 'refusal body truncated');
        return;
      case 'tunnel':
        this.phase = 'done';
        if (error !== null) {
          this.client.destroy();
          return;
        }
        // Stop feeding the dead upstream; closeAfterAnswer reads the client's FIN.
        this.client.unpipe(this.upstream);
        closeAfterAnswer(this.client);
        return;
      case 'done':
        return;
    }
  }

  private onClientGone(): void {
    this.phase = 'done';
    this.disarm();
    this.upstream.destroy();
  }

  /** The downstream failed before answering: 502 or 504 in the contract's shape. */
  private fail(code: 'bad_gateway' | 'gateway_timeout', why: string): void {
    if (this.phase !== 'connecting' && this.phase !== 'answering') return;
    this.phase = 'done';
    this.disarm();
    this.context.metrics.downstreamError(code === 'bad_gateway' ? 'unreachable' : 'timeout');
    this.context.logger.warn({ why }, 'websocket downstream failed');
    this.upstream.destroy();
    sendSocketError(
      this.client,
      code,
      code === 'bad_gateway' ? 'The upstream could not be reached.' : 'The upstream did not answer in time.',
    );
    closeAfterAnswer(this.client);
  }

  /** A refusal that cannot be relayed whole: both connections are cut (the client sees a truncated answer). */
  private cut(why: string): void {
    this.phase = 'done';
    this.disarm();
    this.context.logger.warn({ why }, 'websocket refusal cut');
    this.upstream.destroy();
    this.client.destroy();
  }

  private arm(ms: number, onExpiry: () => void): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(onExpiry, ms);
  }

  private disarm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/**
 * Half-closes a client connection after KeyPin's last byte, then reads and
 * drops what the client still sends until it closes too (or
 * CLIENT_LINGER_MS passes), so the answer is not lost to a reset.
 */
function closeAfterAnswer(client: Socket): void {
  if (client.destroyed) return;
  client.end();
  const limit = setTimeout(() => client.destroy(), CLIENT_LINGER_MS);
  limit.unref();
  client.once('close', () => clearTimeout(limit));
  client.resume();
}
