import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { SettingsService } from '../settings/settings.service';
import { planAlerts } from './alert-window';
import type { AlertRepository, NewAlert } from './alert.repository';

/**
 * Alert windows, evaluated in PostgreSQL under a per-binding advisory lock:
 * correct with any number of gateway/worker instances, and still when Redis
 * is down (intercepts then reach PostgreSQL directly).
 */
export class AlertService {
  constructor(
    private readonly repo: AlertRepository,
    private readonly settings: SettingsService,
    private readonly logger: Logger,
  ) {}

  /**
   * Looks at the binding's not-yet-alerted intercepts from `since` (minus
   * one window) on and raises the alerts they call for. Idempotent.
   */
  async evaluate(bindingId: number, since: Date): Promise<NewAlert[]> {
    const {
      alert_threshold_count: threshold,
      alert_threshold_seconds: seconds,
      auto_ban,
    } = this.settings.current;
    const windowMs = seconds * 1000;
    return this.repo.withBindingLock(bindingId, async (tx) => {
      const from = new Date(since.getTime() - windowMs);
      const { items, tokenDisplay, allowedIps } = await this.repo.unalerted(tx, bindingId, from);
      if (items.length === 0) return [];
      const open = await this.repo.lastAlert(tx, bindingId);
      const plan = planAlerts(items, threshold, windowMs, open);
      if (open !== null && plan.attach.length > 0) {
        await this.repo.markAlerted(
          tx,
          open.id,
          plan.attach.map((i) => i.id),
        );
      }
      const raised: NewAlert[] = [];
      for (const w of plan.windows) {
        const alert: NewAlert = {
          id: randomUUID(),
          bindingId,
          tokenDisplay,
          allowedIps,
          attemptIps: [...new Set(w.items.map((i) => i.ip))],
          count: w.items.length,
          windowSeconds: seconds,
          firstAt: new Date(w.firstAt),
          lastAt: new Date(w.lastAt),
          windowEnd: new Date(w.windowEnd),
          autoBanned: false,
          itemIds: w.items.map((i) => i.id),
        };
        if (auto_ban) alert.autoBanned = await this.repo.ban(tx, bindingId);
        if (!(await this.repo.insert(tx, alert))) continue;
        await this.repo.markAlerted(tx, alert.id, alert.itemIds);
        raised.push(alert);
      }
      for (const a of raised) {
        this.logger.warn(
          { alert: a.id, binding: bindingId, count: a.count, autoBanned: a.autoBanned },
          'intercept threshold reached: alert raised',
        );
      }
      return raised;
    });
  }
}
