import type { Logger } from 'pino';
import { ARCHIVE_CHUNK, type ArchiveRepository } from './archive.repository';

/**
 * Moves bindings unused for `days` into `binding_archive` (kept for audit)
 * and out of the active set: the key binds afresh on its next use. Banned
 * bindings are never archived, so a ban cannot lapse by disuse. The delete
 * fires the bindings trigger, so every instance drops its cached copy.
 */
export class ArchiveService {
  constructor(
    private readonly repo: ArchiveRepository,
    private readonly evict: (hashHex: string) => Promise<void>,
    private readonly logger: Logger,
  ) {}

  async archiveUnused(days: number): Promise<number> {
    let total = 0;
    for (;;) {
      const hashes = await this.repo.moveUnusedChunk(days, `unused for ${days} days`);
      for (const hash of hashes) await this.evict(hash).catch(() => undefined);
      total += hashes.length;
      if (hashes.length < ARCHIVE_CHUNK) break;
    }
    if (total > 0) this.logger.info({ archived: total, days }, 'unused bindings archived');
    await this.repo.pruneLoginFailures();
    return total;
  }
}
