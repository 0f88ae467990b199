import { type Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  json<T = any>(): T;
}

export interface RequestOptions {
  method?: string;
  /** Source address of the client socket: 127.0.0.N gives each test client its own IP. */
  from?: string;
  /** Header list; an array of [name, value] pairs may repeat names. */
  headers?: Record<string, string> | [string, string][];
  body?: string | Buffer;
  agent?: Agent;
}

/** One HTTP request over a real socket bound to `from`. */
export function send(url: string, opts: RequestOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    // Repeated names become arrays, which Node sends as separate header lines.
    const headers: Record<string, string | string[]> = {};
    const pairs = Array.isArray(opts.headers) ? opts.headers : Object.entries(opts.headers ?? {});
    for (const [k, v] of pairs) {
      const cur = headers[k];
      headers[k] = cur === undefined ? v : Array.isArray(cur) ? [...cur, v] : [cur, v];
    }
    const req = httpRequest({
      host: u.hostname,
      port: u.port,
      path: u.pathname + u.search,
      method: opts.method ?? 'GET',
      localAddress: opts.from,
      agent: opts.agent ?? false,
      headers,
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body,
          json: <T>() => JSON.parse(body) as T,
        });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

export const bearer = (key: string): Record<string, string> => ({ authorization: `Bearer ${key}` });
