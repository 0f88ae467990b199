import { createHash, randomUUID } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { fromWire, type InterceptEvent, type InterceptWire, toWire } from './intercept.types';

/**
 * The spool's folder for one database: its name plus a hash of host, port
 * and name (never the credentials). Intercepts carry binding ids of that
 * database, so they must never be replayed into another one, e.g. by a
 * gateway of another deployment (or another test) sharing `SPOOL_DIR`.
 */
export function spoolFolderFor(databaseUrl: string): string {
  const u = new URL(databaseUrl);
  const db = decodeURIComponent(u.pathname.replace(/^\//, '')) || 'postgres';
  const where = `${u.hostname}:${u.port || '5432'}/${db}`;
  const readable = db.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 60);
  return `${readable}-${createHash('sha256').update(where).digest('hex').slice(0, 12)}`;
}

/** `<batch>.json.<pid>.claimed`: a batch a process is replaying. */
const CLAIM_SUFFIX = /\.\d+\.claimed$/;

async function claimIsStale(path: string, staleMs: number): Promise<boolean> {
  try {
    // The rename that made the claim set its ctime.
    return Date.now() - (await stat(path)).ctimeMs >= staleMs;
  } catch {
    return false;
  }
}

/**
 * The last resort when neither Redis nor PostgreSQL takes a batch: one
 * fsync'ed file per batch on local disk (`<SPOOL_DIR>/intercepts/<database
 * folder>/`), replayed (oldest first) once PostgreSQL answers again, and
 * deleted only after a successful write. Files directly in
 * `<SPOOL_DIR>/intercepts/` were written by versions without per-database
 * folders; they are replayed too.
 */
export class InterceptSpool {
  private readonly root: string;
  private readonly dir: string;

  constructor(
    spoolDir: string,
    databaseUrl: string,
    private readonly logger: Logger,
    /** A claim this old was left by a process that died while replaying: it is replayed again (writes are idempotent). */
    private readonly staleClaimMs = 60_000,
  ) {
    this.root = join(spoolDir, 'intercepts');
    this.dir = join(this.root, spoolFolderFor(databaseUrl));
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

  /** Spooled batches waiting for this database, oldest first (paths). */
  async pendingFiles(): Promise<string[]> {
    const inFolder = async (dir: string) => {
      try {
        const out: string[] = [];
        for (const f of await readdir(dir)) {
          if (f.endsWith('.json')) out.push(join(dir, f));
          else if (f.endsWith('.claimed') && (await claimIsStale(join(dir, f), this.staleClaimMs)))
            out.push(join(dir, f));
        }
        return out;
      } catch {
        return [];
      }
    };
    const files = [...(await inFolder(this.root)), ...(await inFolder(this.dir))];
    const name = (path: string) => path.slice(path.lastIndexOf('/') + 1);
    return files.sort((a, b) => (name(a) < name(b) ? -1 : name(a) > name(b) ? 1 : 0));
  }

  /**
   * Replays spooled batches through `write`; stops at the first failure.
   * Several processes share one spool (WORKERS ≥ 2, docs/workers.md): a
   * file is first claimed by renaming it (atomic, so one process wins; the
   * others skip it) and renamed back if its write fails.
   */
  async replay(write: (events: InterceptEvent[]) => Promise<unknown>): Promise<number> {
    let replayed = 0;
    for (const path of await this.pendingFiles()) {
      const original = path.replace(CLAIM_SUFFIX, '');
      const claimed = `${original}.${process.pid}.claimed`;
      try {
        await rename(path, claimed);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // another process took it
        throw err;
      }
      let events: InterceptEvent[];
      try {
        events = (JSON.parse(await readFile(claimed, 'utf8')) as InterceptWire[]).map(fromWire);
        await write(events);
      } catch (err) {
        await rename(claimed, original).catch(() => undefined);
        throw err;
      }
      await unlink(claimed);
      replayed += events.length;
    }
    if (replayed > 0) this.logger.info({ count: replayed }, 'spooled intercepts written to PostgreSQL');
    return replayed;
  }
}
