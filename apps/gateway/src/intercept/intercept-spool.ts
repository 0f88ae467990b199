import { randomUUID } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { fromWire, type InterceptEvent, type InterceptWire, toWire } from './intercept.types';

/**
 * The last resort when neither Redis nor PostgreSQL takes a batch: one
 * fsync'ed file per batch on local disk, replayed (oldest first) once
 * PostgreSQL answers again, and deleted only after a successful write.
 */
export class InterceptSpool {
  private readonly dir: string;

  constructor(
    spoolDir: string,
    private readonly logger: Logger,
  ) {
    this.dir = join(spoolDir, 'intercepts');
  }

  async write(events: readonly InterceptEvent[]): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const name = `${Date.now().toString().padStart(15, '0')}-${randomUUID()}`;
    const tmp = join(this.dir, `${name}.tmp`);
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(JSON.stringify(events.map(toWire)));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, join(this.dir, `${name}.json`));
    this.logger.warn({ count: events.length }, 'intercepts spooled to local disk');
  }

  async pendingFiles(): Promise<string[]> {
    try {
      return (await readdir(this.dir)).filter((f) => f.endsWith('.json')).sort();
    } catch {
      return [];
    }
  }

  /** Replays spooled batches through `write`; stops at the first failure. */
  async replay(write: (events: InterceptEvent[]) => Promise<unknown>): Promise<number> {
    let replayed = 0;
    for (const file of await this.pendingFiles()) {
      const path = join(this.dir, file);
      const events = (JSON.parse(await readFile(path, 'utf8')) as InterceptWire[]).map(fromWire);
      await write(events);
      await unlink(path);
      replayed += events.length;
    }
    if (replayed > 0) this.logger.info({ count: replayed }, 'spooled intercepts written to PostgreSQL');
    return replayed;
  }
}
