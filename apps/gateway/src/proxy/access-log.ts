import pino from 'pino';

/** One proxied request, as `ACCESS_LOG=json` writes it (docs/contract.md 10). */
export interface AccessEntry {
  clientIp: string | null;
  /** The masked key (`abcd…wxyz`), never the raw one; null without a key. */
  key: string | null;
  /** The route that served it; null while only DOWNSTREAM_URL is configured. */
  route: string | null;
  method: string;
  /** The request target as received: its query is cut off here. */
  target: string;
  status: number;
  decision: string;
  /** Request body bytes (see docs/configuration.md, ACCESS_LOG). */
  bytesIn: number;
  /** Response body bytes sent to the client. */
  bytesOut: number;
  durationMs: number;
}

/** Where the lines go: a writer that never blocks the event loop. */
export interface LineSink {
  write(line: string): unknown;
  flushSync(): void;
}

/**
 * `ACCESS_LOG=json`: one JSON line per proxied request on stdout, written
 * through an asynchronous destination (pino's SonicBoom: lines queue in
 * memory while a write is in flight, so the hot path never waits on the
 * pipe). Never a raw key, never a query string.
 */
export class AccessLog {
  constructor(private readonly sink: LineSink = pino.destination({ dest: 1, sync: false })) {}

  write(e: AccessEntry): void {
    const q = e.target.indexOf('?');
    const path = q === -1 ? e.target : e.target.slice(0, q);
    this.sink.write(
      `{"time":"${new Date().toISOString()}","client_ip":${JSON.stringify(e.clientIp)},` +
        `"key":${JSON.stringify(e.key)},"route":${JSON.stringify(e.route)},` +
        `"method":${JSON.stringify(e.method)},"path":${JSON.stringify(path)},"status":${e.status},` +
        `"decision":"${e.decision}","bytes_in":${e.bytesIn},"bytes_out":${e.bytesOut},` +
        `"duration_ms":${Math.round(e.durationMs * 1000) / 1000}}\n`,
    );
  }

  /** Writes out what is queued (on shutdown). */
  flush(): void {
    try {
      this.sink.flushSync();
    } catch {
      // Nothing queued, or stdout is gone: nothing more can be done.
    }
  }
}
