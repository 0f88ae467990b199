import { pipeline, type Readable, Transform, type TransformCallback } from 'node:stream';
import { Client } from 'pg';
import QueryStream from 'pg-query-stream';
import type { Logger } from 'pino';
import type { DataSource } from 'typeorm';
import { KeypinError } from '../infra/http/all-exceptions.filter';
import { INTERCEPT_CSV_HEADER, interceptCsvRecord } from './csv';
import type { InterceptFilter } from './intercept-filter';
import { exportQuery, type InterceptRow, toIntercept } from './intercept-log.repository';

/** Rows fetched from the cursor per round trip (and buffered at most). */
const BATCH_ROWS = 256;
/** Largest chunk handed to the socket at once. */
const CHUNK_BYTES = 64 * 1024;

/**
 * Intercept rows in, CSV bytes out: the header row first (sent before the
 * first row is read, so the download starts at once), then one record per
 * row. Records of one cursor batch are joined into one chunk at the end of
 * the tick, so the socket sees a few large writes instead of one per row.
 */
export class InterceptCsvStream extends Transform {
  rows = 0;
  private pending = '';
  private scheduled: NodeJS.Immediate | null = null;

  constructor() {
    super({
      writableObjectMode: true,
      writableHighWaterMark: BATCH_ROWS,
      readableHighWaterMark: CHUNK_BYTES,
    });
    this.push(Buffer.from(INTERCEPT_CSV_HEADER, 'utf8'));
  }

  override _transform(row: InterceptRow, _enc: BufferEncoding, done: TransformCallback): void {
    try {
      this.pending += interceptCsvRecord(toIntercept(row));
    } catch (err) {
      done(err as Error);
      return;
    }
    this.rows++;
    if (this.pending.length >= CHUNK_BYTES) this.emitPending();
    else if (this.scheduled === null) this.scheduled = setImmediate(() => this.emitPending());
    done();
  }

  override _flush(done: TransformCallback): void {
    this.emitPending();
    done();
  }

  override _destroy(err: Error | null, done: (error?: Error | null) => void): void {
    this.clearSchedule();
    this.pending = '';
    done(err);
  }

  private emitPending(): void {
    this.clearSchedule();
    if (this.pending === '' || this.destroyed) return;
    const chunk = Buffer.from(this.pending, 'utf8');
    this.pending = '';
    this.push(chunk);
  }

  private clearSchedule(): void {
    if (this.scheduled !== null) clearImmediate(this.scheduled);
    this.scheduled = null;
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error('timed out')), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Streams the intercept log as CSV from a PostgreSQL cursor with flat
 * memory. Each export runs on a connection of its own (not the shared pool,
 * which the hot path and the API need; a slow download holds its
 * connection for as long as it lasts), so the number of exports running at
 * once is capped. Backpressure runs end to end: a slow reader stops the
 * socket writes, the CSV transform, then the cursor fetches.
 */
export class InterceptExporter {
  private running = 0;

  constructor(
    private readonly databaseUrl: string,
    private readonly ds: DataSource,
    private readonly logger: Logger,
    readonly maxConcurrent = 4,
  ) {}

  /**
   * Opens the export: resolves once the database connection is up, with a
   * readable of CSV bytes. The connection is closed when the stream ends,
   * fails or is destroyed (the HTTP client went away); a query still running
   * then is cancelled on the server too.
   */
  async open(filter: InterceptFilter): Promise<Readable> {
    if (this.running >= this.maxConcurrent) {
      throw new KeypinError(
        'too_many_attempts',
        `${this.maxConcurrent} exports are running already; try again when one has finished.`,
      );
    }
    this.running++;
    const client = new Client({ connectionString: this.databaseUrl, application_name: 'keypin-export' });
    client.on('error', (err) => this.logger.debug({ err: err.message }, 'export connection error'));
    let pid: number;
    try {
      await client.connect();
      const r = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      pid = r.rows[0]!.pid;
    } catch (err) {
      this.running--;
      await client.end().catch(() => undefined);
      throw err;
    }

    const started = Date.now();
    const { text, values } = exportQuery(filter);
    const rows = client.query(new QueryStream(text, values, { batchSize: BATCH_ROWS }));
    const csv = new InterceptCsvStream();
    let rowsDone = false;
    let closed = false;
    rows.once('end', () => (rowsDone = true));

    const close = (err: Error | null, aborted: boolean) => {
      if (closed) return;
      closed = true;
      void (async () => {
        if (!rowsDone) {
          // Ending the socket alone would leave a long sort running on the server.
          await withTimeout(this.ds.query('SELECT pg_cancel_backend($1)', [pid]), 2000).catch(
            () => undefined,
          );
        }
        await client.end().catch(() => undefined);
      })().finally(() => this.running--);
      const log = { rows: csv.rows, ms: Date.now() - started, filter };
      if (err === null) this.logger.info(log, 'intercept export finished');
      else if (aborted) this.logger.info(log, 'intercept export stopped: the client went away');
      else this.logger.warn({ ...log, err: err.message }, 'intercept export failed');
    };

    // Completes when every row went through the transform (the download may still be draining).
    pipeline(rows, csv, (err) => close(err ?? null, err?.code === 'ERR_STREAM_PREMATURE_CLOSE'));
    // Destroyed by the HTTP layer when the client goes away.
    csv.once('close', () => close(csv.readableEnded ? null : new Error('client went away'), true));
    return csv;
  }
}
