import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';

export interface StreamResult {
  status: number;
  headers: IncomingHttpHeaders;
  /** Each event (text between blank lines) with its arrival time. */
  events: { text: string; at: number }[];
  startedAt: number;
  endedAt: number;
  /** The response ended cleanly (terminating chunk seen). */
  complete: boolean;
  error: string | null;
}

/** Reads an SSE response event by event, stamping each arrival. */
export function readSse(
  url: string,
  from: string,
  headers: Record<string, string> = {},
): Promise<StreamResult> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const startedAt = performance.now();
    const req = httpRequest({
      host: u.hostname,
      port: u.port,
      path: u.pathname + u.search,
      localAddress: from,
      agent: false,
      headers: { accept: 'text/event-stream', ...headers },
    });
    req.on('error', reject);
    req.on('response', (res) => {
      const out: StreamResult = {
        status: res.statusCode ?? 0,
        headers: res.headers,
        events: [],
        startedAt,
        endedAt: 0,
        complete: false,
        error: null,
      };
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (s: string) => {
        const at = performance.now();
        buf += s;
        let i: number;
        while ((i = buf.indexOf('\n\n')) !== -1) {
          out.events.push({ text: buf.slice(0, i), at });
          buf = buf.slice(i + 2);
        }
      });
      const done = (error: string | null) => {
        if (out.endedAt !== 0) return;
        out.endedAt = performance.now();
        out.complete = res.complete;
        out.error = error;
        resolve(out);
      };
      res.on('end', () => done(null));
      res.on('error', (e) => done(e.message));
      res.on('aborted', () => done('aborted'));
      res.on('close', () => done(res.complete ? null : 'closed'));
    });
    req.end();
  });
}
