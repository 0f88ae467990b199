import type { Readable } from 'node:stream';
import type { Intercept } from '@keypin/shared';
import type { Paging } from '../admin/common/paging';
import type { InterceptFilter } from './intercept-filter';
import type { InterceptLogRepository } from './intercept-log.repository';
import type { InterceptExporter } from './logs-export';

/**
 * The intercept log for the admin API: a page of records and the streamed
 * CSV export of every record matching a filter.
 */
export class InterceptLogService {
  constructor(
    private readonly repo: InterceptLogRepository,
    private readonly exporter: InterceptExporter,
  ) {}

  /** One page, newest first, and the number of matching records. */
  list(filter: InterceptFilter, paging: Paging): Promise<{ items: Intercept[]; total: number }> {
    return this.repo.list(filter, paging.pageSize, paging.offset);
  }

  /**
   * CSV bytes of every matching record, newest first; resolves once the
   * export's database connection is up. 429 `too_many_attempts` when the
   * process already runs its maximum of exports.
   */
  exportCsv(filter: InterceptFilter): Promise<Readable> {
    return this.exporter.open(filter);
  }
}
