import type { Logger } from 'pino';
import type { AlertService } from '../alert/alert.service';
import type { InterceptRepository } from './intercept.repository';
import type { InterceptEvent } from './intercept.types';

const MAX_WINDOWS = 10_000;

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

  /**
   * The latest alert window per binding, as last seen. Windows never change
   * once raised, so an intercept inside a known window is stored as part of
   * that alert straight away and needs no evaluation (the common case
   * during an attack: one INSERT per batch).
   */
  private readonly windows = new Map<number, { id: string; firstAt: number; windowEnd: number }>();

  async write(events: readonly InterceptEvent[]): Promise<number> {
    if (events.length === 0) return 0;
    const alertOf = (e: InterceptEvent): string | null => {
      if (e.bindingId === null) return null;
      const w = this.windows.get(e.bindingId);
      const t = e.at.getTime();
      return w !== undefined && t >= w.firstAt && t < w.windowEnd ? w.id : null;
    };
    const inserted = await this.repo.insertBatch(events, alertOf);
    const since = new Map<number, Date>();
    for (const e of events) {
      // Without a binding there is nothing to alert on or ban: the record is the evidence.
      if (e.bindingId === null || alertOf(e) !== null) continue;
      const cur = since.get(e.bindingId);
      if (cur === undefined || e.at < cur) since.set(e.bindingId, e.at);
    }
    const raised: string[] = [];
    for (const [bindingId, at] of since) {
      const { raised: alerts, last } = await this.alerts.evaluate(bindingId, at);
      for (const a of alerts) raised.push(a.id);
      this.remember(bindingId, last);
    }
    if (raised.length > 0) {
      await this.dispatch.dispatch(raised).catch((err: Error) => {
        // The alerts are stored as pending; the sweeper queues them later.
        this.logger.warn({ err: err.message }, 'could not queue webhook delivery yet');
      });
    }
    return inserted;
  }

  private remember(bindingId: number, last: { id: string; firstAt: number; windowEnd: number } | null): void {
    if (last === null || last.windowEnd <= Date.now()) {
      this.windows.delete(bindingId);
      return;
    }
    if (!this.windows.has(bindingId) && this.windows.size >= MAX_WINDOWS) {
      const oldest = this.windows.keys().next();
      if (!oldest.done) this.windows.delete(oldest.value);
    }
    this.windows.set(bindingId, last);
  }
}
