import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Delivery {
  headers: IncomingHttpHeaders;
  body: string;
  status: number;
  at: number;
}

/** A real webhook receiver on loopback; answers with `statuses` in turn (then 200). */
export class WebhookReceiver {
  readonly deliveries: Delivery[] = [];
  statuses: number[] = [];
  private server: Server | null = null;
  port = 0;

  get url(): string {
    return `http://127.0.0.1:${this.port}/hooks/keypin`;
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => (body += c));
      req.on('end', () => {
        const status = this.statuses.shift() ?? 200;
        this.deliveries.push({ headers: req.headers, body, status, at: Date.now() });
        res.writeHead(status, { 'content-type': 'text/plain' });
        res.end(status < 300 ? 'ok' : 'nope');
      });
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
}

/** Verifies a Standard Webhooks signature the way a receiver would. */
export function signatureValid(d: Delivery, secret: string): boolean {
  const id = String(d.headers['webhook-id']);
  const ts = String(d.headers['webhook-timestamp']);
  const expected = createHmac('sha256', secret).update(`${id}.${ts}.${d.body}`).digest('base64');
  return String(d.headers['webhook-signature'])
    .split(' ')
    .some((sig) => sig === `v1,${expected}`);
}
