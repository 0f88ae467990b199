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
    let connected = false;
    let responded = false;
    const timer = setTimeout(() => upstream.destroy(new Error('connect timeout')), this.connectTimeoutMs);

    const lines = [`${req.method} ${this.pathFor(req.url!)} HTTP/1.1`, `Host: ${this.downstream.host}`];
    for (let i = 0; i + 1 < headers.length; i += 2) lines.push(`${headers[i]}: ${headers[i + 1]}`);
    lines.push('Connection: Upgrade', 'Upgrade: websocket', '', '');

    upstream.once(this.tls ? 'secureConnect' : 'connect', () => {
      connected = true;
      clearTimeout(timer);
      upstream.setNoDelay(true);
      upstream.write(lines.join('\r\n'));
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.once('data', () => {
      responded = true;
    });
    upstream.on('error', (err) => {
      clearTimeout(timer);
      if (!connected || !responded) {
        this.metrics.downstreamError('unreachable');
        this.logger.warn({ err: err.message }, 'websocket downstream failed');
        sendSocketError(client, 'bad_gateway', 'The upstream could not be reached.');
      } else {
        client.destroy();
      }
    });
    client.on('error', () => upstream.destroy());
    upstream.on('close', () => {
      this.open.delete(upstream);
      if (responded) client.destroy();
    });
    client.on('close', () => upstream.destroy());
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
