/** WebSocket clients for the tests (through the gateway, or through nginx and the gateway). */
import type { IncomingHttpHeaders } from 'node:http';
import { WebSocket } from 'ws';

/** A WebSocket whose messages are queued from the start (none can slip past before a listener is attached). */
export interface OpenWs {
  ws: WebSocket;
  /** The next message, as text, or as a Buffer when binary. */
  next(): Promise<string | Buffer>;
}

/** Opens a WebSocket through the gateway; resolves on open or on an HTTP refusal. */
export function openWs(
  url: string,
  opts: { from: string; headers?: Record<string, string>; protocols?: string[]; limitMs?: number },
): Promise<OpenWs | { status: number; body: string; headers: IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, opts.protocols ?? [], { localAddress: opts.from, headers: opts.headers });
    const queued: (string | Buffer)[] = [];
    const waiting: ((m: string | Buffer) => void)[] = [];
    ws.on('message', (d, isBinary) => {
      const m = isBinary ? (d as Buffer) : (d as Buffer).toString('utf8');
      const w = waiting.shift();
      if (w) w(m);
      else queued.push(m);
    });
    const next = () =>
      new Promise<string | Buffer>((res, rej) => {
        const m = queued.shift();
        if (m !== undefined) return res(m);
        waiting.push(res);
        setTimeout(() => rej(new Error('no WebSocket message within 5 s')), 5000).unref();
      });
    const limit = setTimeout(() => {
      ws.terminate();
      reject(new Error(`no answer to the WebSocket upgrade within ${opts.limitMs ?? 4000} ms`));
    }, opts.limitMs ?? 4000);
    ws.once('open', () => {
      clearTimeout(limit);
      resolve({ ws, next });
    });
    ws.once('unexpected-response', (_req, res) => {
      clearTimeout(limit);
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          body: Buffer.concat(chunks).toString('utf8'),
          headers: res.headers,
        }),
      );
    });
    ws.once('error', (e) => {
      clearTimeout(limit);
      reject(e);
    });
  });
}
