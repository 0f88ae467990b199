import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import type { MetricsService } from '../infra/metrics/metrics.service';
import { sendSocketError } from './responses';

/**
 * Tunnels an already-judged WebSocket upgrade: opens a connection to the
 * downstream, replays the request head (filtered headers), then pipes bytes
 * both ways. The downstream's own answer (101 or a refusal) reaches the
 * client unchanged.
 */
export class WebSocketTunnel {
  private readonly port: number;
  private readonly tls: boolean;
  private readonly open = new Set<Socket>();

  constructor(
    private readonly downstream: URL,
    private readonly pathFor: (url: string) => string,
    private readonly connectTimeoutMs: number,
    private readonly responseTimeoutMs: number,
    private readonly metrics: MetricsService,
    private readonly logger: Logger,
  ) {
    this.tls = downstream.protocol === 'https:';
    this.port = Number(downstream.port || (this.tls ? 443 : 80));
  }

  tunnel(req: IncomingMessage, client: Socket, head: Buffer, headers: string[]): void {
    const host = this.downstream.hostname.replace(/^\[|\]$/g, '');
    const upstream: Socket = this.tls
      ? tlsConnect({ host, port: this.port, servername: host })
      : netConnect({ host, port: this.port });
    let responded = false;
    let failed = false;
    const fail = (code: 'bad_gateway' | 'gateway_timeout', why: string) => {
      if (failed) return;
      failed = true;
      this.metrics.downstreamError(code === 'bad_gateway' ? 'unreachable' : 'timeout');
      this.logger.warn({ why }, 'websocket downstream failed');
      sendSocketError(
        client,
        code,
        code === 'bad_gateway'
          ? 'The upstream could not be reached.'
          : 'The upstream did not answer in time.',
      );
      upstream.destroy();
    };
    let timer = setTimeout(() => fail('bad_gateway', 'connect timeout'), this.connectTimeoutMs);

    const lines = [`${req.method} ${this.pathFor(req.url!)} HTTP/1.1`, `Host: ${this.downstream.host}`];
    for (let i = 0; i + 1 < headers.length; i += 2) lines.push(`${headers[i]}: ${headers[i + 1]}`);
    lines.push('Connection: Upgrade', 'Upgrade: websocket', '', '');

    upstream.once(this.tls ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer);
      // Until the downstream answers, a silent peer is a timeout, not a hang.
      timer = setTimeout(() => fail('gateway_timeout', 'no answer to the upgrade'), this.responseTimeoutMs);
      upstream.setNoDelay(true);
      upstream.write(lines.join('\r\n'));
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client, { end: false });
      client.pipe(upstream);
    });
    upstream.once('data', () => {
      responded = true;
      clearTimeout(timer);
    });
    upstream.on('error', (err) => {
      clearTimeout(timer);
      if (!responded) fail('bad_gateway', err.message);
      else client.destroy();
    });
    upstream.on('close', () => {
      clearTimeout(timer);
      this.open.delete(upstream);
      if (!responded) fail('bad_gateway', 'closed without answering');
      else client.end();
    });
    client.on('error', () => upstream.destroy());
    client.on('close', () => {
      clearTimeout(timer);
      upstream.destroy();
    });
    this.open.add(upstream);
  }

  /** Ends every open tunnel (shutdown deadline reached). */
  closeAll(): void {
    for (const s of this.open) s.destroy();
  }

  get size(): number {
    return this.open.size;
  }
}
