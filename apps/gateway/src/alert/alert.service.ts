import { formatCidr, networkOf, parseIp } from '@keypin/shared';
import { uuidv7 } from '../infra/uuid';
import type { Logger } from 'pino';
import type { SettingsService } from '../settings/settings.service';
import { planAlerts } from './alert-window';
import type { OpenAlert } from './alert-window';
import type { AlertRepository, NewAlert } from './alert.repository';

/**
 * The networks of attempted IPs under the binding prefixes (docs/alerts.md):
 * canonical CIDRs in the order their IPs come, without duplicates.
 */
export function attemptNetworks(ips: readonly string[], v4Prefix: number, v6Prefix: number): string[] {
  const out = new Set<string>();
  for (const text of ips) {
    const ip = parseIp(text);
    if (ip !== null) out.add(formatCidr(networkOf(ip, ip.version === 4 ? v4Prefix : v6Prefix)));
  }
  return [...out];
}

export interface Evaluation {
  raised: NewAlert[];
  /** The binding's latest alert after this evaluation (its window may still be open). */
  last: (OpenAlert & { firstAt: number }) | null;
}

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
  async evaluate(bindingId: number, since: Date): Promise<Evaluation> {
    const {
      alert_threshold_count: threshold,
      alert_threshold_seconds: seconds,
      auto_ban,
      bind_ipv4_prefix: v4Prefix,
      bind_ipv6_prefix: v6Prefix,
    } = this.settings.current;
    const windowMs = seconds * 1000;
    return this.repo.withBindingLock(bindingId, async (tx) => {
      let from = new Date(since.getTime() - windowMs);
      let last = await this.repo.lastAlert(tx, bindingId);
      if (last !== null && last.windowEnd > from.getTime()) {
        // Everything before the end of the last alert's window belongs to it.
        await this.repo.attach(tx, bindingId, last, from);
        from = new Date(last.windowEnd);
      }
      const items = await this.repo.unalerted(tx, bindingId, from);
      const plan = planAlerts(items, threshold, windowMs, null);
      const raised: NewAlert[] = [];
      if (plan.windows.length > 0) {
        const { tokenDisplay, allowedIps } = await this.repo.snapshot(tx, items[items.length - 1]!.id);
        for (const w of plan.windows) {
          const attemptIps = [...new Set(w.items.map((i) => i.ip))];
          const alert: NewAlert = {
            id: uuidv7(),
            bindingId,
            tokenDisplay,
            allowedIps,
            attemptIps,
            attemptNetworks: attemptNetworks(attemptIps, v4Prefix, v6Prefix),
            count: w.count,
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
          last = { id: alert.id, firstAt: w.firstAt, windowEnd: w.windowEnd };
        }
      }
      for (const a of raised) {
        this.logger.warn(
          { alert: a.id, binding: bindingId, count: a.count, autoBanned: a.autoBanned },
          'intercept threshold reached: alert raised',
        );
      }
      return { raised, last };
    });
  }
}
