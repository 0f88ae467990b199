import { pipeline, type Readable, Transform, type TransformCallback } from 'node:stream';
import type { Logger } from 'pino';
import { KeypinError } from '../infra/http/all-exceptions.filter';
import { INTERCEPT_CSV_HEADER, interceptCsvRecord } from './csv';
import type { InterceptFilter } from './intercept-filter';
import {
  type InterceptLogRepository,
  type InterceptRow,
  type InterceptRowCursor,
  toIntercept,
} from './intercept-log.repository';

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

/**
 * Streams the intercept log as CSV with flat memory: rows come from the
 * repository's cursor (a connection of its own per export, so the number of
 * exports running at once is capped) and are formatted here. Backpressure
 * runs end to end: a slow reader stops the socket writes, the CSV
 * transform, then the cursor fetches.
 */
export class InterceptExporter {
  private running = 0;

  constructor(
    private readonly repo: InterceptLogRepository,
    private readonly logger: Logger,
    readonly maxConcurrent = 4,
  ) {}

  /**
   * Opens the export: resolves once the database connection is up, with a
   * readable of CSV bytes. The cursor is closed when the stream ends, fails
   * or is destroyed (the HTTP client went away); a query still running then
   * is cancelled on the server too.
   */
  async open(filter: InterceptFilter): Promise<Readable> {
    if (this.running >= this.maxConcurrent) {
      throw new KeypinError(
        'too_many_attempts',
        `${this.maxConcurrent} exports are running already; try again when one has finished.`,
      );
    }
    this.running++;
    let cursor: InterceptRowCursor;
    try {
      cursor = await this.repo.openCursor(filter, BATCH_ROWS);
    } catch (err) {
      this.running--;
      throw err;
    }

    const started = Date.now();
    const csv = new InterceptCsvStream();
    let closed = false;

    const close = (err: Error | null, aborted: boolean) => {
      if (closed) return;
      closed = true;
      void cursor.close().finally(() => this.running--);
      const log = { rows: csv.rows, ms: Date.now() - started, filter };
      if (err === null) this.logger.info(log, 'intercept export finished');
      else if (aborted) this.logger.info(log, 'intercept export stopped: the client went away');
      else this.logger.warn({ ...log, err: err.message }, 'intercept export failed');
    };

    // Completes when every row went through the transform (the download may still be draining).
    pipeline(cursor.rows, csv, (err) => close(err ?? null, err?.code === 'ERR_STREAM_PREMATURE_CLOSE'));
    // Destroyed by the HTTP layer when the client goes away.
    csv.once('close', () => close(csv.readableEnded ? null : new Error('client went away'), true));
    return csv;
  }
}
