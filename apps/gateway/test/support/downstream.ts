import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SeenRequest {
  method: string;
  url: string;
  rawHeaders: string[];
  headers: IncomingMessage['headers'];
  bodyBytes: number;
  /** The client (KeyPin) went away before the response ended. */
  aborted: boolean;
}

export type Route = (req: IncomingMessage, res: ServerResponse, seen: SeenRequest) => void;

/**
 * A route for draining tests: `/v1/slow…` streams `chunk` `count` times,
 * one every `everyMs`; anything else answers `{"ok":true}` at once.
 */
export function slowStreamRoute(chunk: string, count: number, everyMs: number): Route {
  return (req, res) => {
    req.resume();
    req.on('end', () => {
      if (!req.url?.startsWith('/v1/slow')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"ok":true}');
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain' });
      let i = 0;
      const timer = setInterval(() => {
        res.write(chunk);
        if (++i === count) {
          clearInterval(timer);
          res.end();
        }
      }, everyMs);
      res.on('close', () => clearInterval(timer));
    });
  };
}

/**
 * A real HTTP server on loopback standing in for the relay. By default it
 * drains the body and answers 200 with a JSON echo; tests set `route`.
 */
export class FakeDownstream {
  readonly seen: SeenRequest[] = [];
  route: Route | null = null;
  private server: Server | null = null;
  port = 0;

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const seen: SeenRequest = {
        method: req.method ?? '',
        url: req.url ?? '',
        rawHeaders: req.rawHeaders,
        headers: req.headers,
        bodyBytes: 0,
        aborted: false,
      };
      this.seen.push(seen);
      res.on('close', () => {
        if (!res.writableFinished) seen.aborted = true;
      });
      if (this.route) {
        this.route(req, res, seen);
        return;
      }
      req.on('data', (c: Buffer) => (seen.bodyBytes += c.length));
      req.on('end', () => {
        const body = JSON.stringify({
          ok: true,
          method: req.method,
          url: req.url,
          bodyBytes: seen.bodyBytes,
        });
        res.writeHead(200, { 'content-type': 'application/json', 'x-downstream': 'fake' });
        res.end(body);
      });
    });
    this.server.keepAliveTimeout = 60_000;
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  /** Stops listening and drops open connections. */
  async stop(): Promise<void> {
    if (!this.server) return;
    const s = this.server;
    this.server = null;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }

  /** The last request that reached the downstream. */
  last(): SeenRequest {
    const s = this.seen[this.seen.length - 1];
    if (!s) throw new Error('no request reached the downstream');
    return s;
  }
}
