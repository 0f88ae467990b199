import type { Logger } from 'pino';
import type { AlertService } from '../alert/alert.service';
import type { InterceptRepository } from './intercept.repository';
import type { InterceptEvent } from './intercept.types';

/** Hands newly raised alerts to webhook delivery. */
export interface AlertDispatch {
  dispatch(alertIds: string[]): Promise<void>;
}

/**
 * Persists a batch of intercepts and evaluates alert windows for the keys
 * involved. Idempotent: used by the queue worker, by the gateway's direct
 * fallback and by spool replay, so the same batch may arrive twice.
 */
export class InterceptWriter {
  constructor(
    private readonly repo: InterceptRepository,
    private readonly alerts: AlertService,
    private readonly dispatch: AlertDispatch,
    private readonly logger: Logger,
  ) {}

  async write(events: readonly InterceptEvent[]): Promise<number> {
    if (events.length === 0) return 0;
    const inserted = await this.repo.insertBatch(events);
    const since = new Map<number, Date>();
    for (const e of events) {
      const cur = since.get(e.bindingId);
      if (cur === undefined || e.at < cur) since.set(e.bindingId, e.at);
    }
    const raised: string[] = [];
    for (const [bindingId, at] of since) {
      const alerts = await this.alerts.evaluate(bindingId, at);
      for (const a of alerts) raised.push(a.id);
    }
    if (raised.length > 0) {
      await this.dispatch.dispatch(raised).catch((err: Error) => {
        // The alerts are stored as pending; the sweeper queues them later.
        this.logger.warn({ err: err.message }, 'could not queue webhook delivery yet');
      });
    }
    return inserted;
  }
}
