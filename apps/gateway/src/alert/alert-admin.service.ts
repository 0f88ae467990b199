import {
  type Alert,
  type AlertActionResult,
  type AlertStatus,
  type Binding,
  cidrErrorMessage,
  formatCidr,
  parseCidr,
} from '@keypin/shared';
import type { DataSource, EntityManager } from 'typeorm';
import type { Caller } from '../admin/common/roles';
import type { Paging } from '../admin/common/paging';
import { invalid } from '../admin/common/validation';
import type { AuditSink, BindingAdminService, ChangeOrigin } from '../binding/binding-admin.service';
import { KeypinError } from '../infra/http/all-exceptions.filter';
import type { AlertAdminRepository, AlertFilter } from './alert-admin.repository';

export interface AlertAdminServiceDeps {
  ds: DataSource;
  repo: AlertAdminRepository;
  /** The binding changes an action makes, with their locking and their announcement to every instance. */
  bindings: Pick<BindingAdminService, 'allowNetwork' | 'setStatus'>;
  audit: AuditSink;
}

/** The audit action of each way out of `open`. */
const AUDIT_ACTION: Record<Exclude<AlertStatus, 'open'>, string> = {
  allowed: 'alert.allow_network',
  banned: 'alert.ban',
  dismissed: 'alert.dismiss',
};

const target = (id: string) => `alert:${id}`;
const notFound = (id: string) => new KeypinError('not_found', `No alert ${id}.`);

/** 409 for an alert that is not open: who closed it, how and when. */
function notOpen(a: Alert): KeypinError {
  const by = a.acted_by === null ? (a.auto_banned ? ' by AUTO_BAN' : '') : ` by ${a.acted_by}`;
  const when = a.acted_at === null ? '' : ` at ${a.acted_at}`;
  const what: Record<AlertStatus, string> = {
    open: 'is open',
    allowed: `was resolved already: network ${a.allowed_network ?? '?'} was allowed${by}${when}`,
    banned: `was resolved already: the key was banned${by}${when}`,
    dismissed: `was dismissed already${by}${when}`,
  };
  return new KeypinError(
    'alert_not_open',
    `Alert ${a.id} ${what[a.status]}. Only an open alert can be acted on.`,
    { alert_status: a.status },
  );
}

/** The record of an alert for the audit trail: its id and status, and its binding as it was. */
function auditView(a: Alert, binding?: Binding): Record<string, unknown> {
  return {
    alert_id: a.id,
    status: a.status,
    binding_id: a.binding_id,
    ...(a.allowed_network === null ? {} : { network: a.allowed_network }),
    ...(binding === undefined ? {} : { binding }),
  };
}

/**
 * Alerts in the admin API, and the three actions on an open alert
 * (docs/contract.md 11, docs/alerts.md): allow one of its networks for the
 * key, ban the key, dismiss it. An action that changes the binding goes
 * through BindingAdminService (the binding's row lock, its checks, the
 * announcement to every instance after the commit); the alert's row is
 * locked first, in the same transaction, so two actions on one alert are
 * serialised and the second is refused (409 `alert_not_open`). Each action
 * writes one audit row, `alert.<action>` on target `alert:<id>`, holding
 * the alert's id and status and the binding before and after.
 */
export class AlertAdminService {
  constructor(private readonly d: AlertAdminServiceDeps) {}

  list(filter: AlertFilter, p: Paging): Promise<{ items: Alert[]; total: number }> {
    return this.d.repo.list(filter, p);
  }

  async get(id: string): Promise<Alert> {
    const a = await this.d.repo.get(id);
    if (!a) throw notFound(id);
    return a;
  }

  /** Adds one of the alert's networks to its key's allowed networks (rule `multiple`). */
  async allowNetwork(caller: Caller, id: string, input: string): Promise<AlertActionResult> {
    const parsed = parseCidr(input.trim());
    if (!parsed.ok) throw invalid('network', cidrErrorMessage(input, parsed.error));
    const network = formatCidr(parsed.cidr);
    const { bindingId, origin, result } = await this.prepare(caller, id, 'allowed', (a) => {
      if (!a.attempt_networks.includes(network)) {
        throw invalid(
          'network',
          `${network} is not one of this alert's networks (${a.attempt_networks.join(', ') || 'none'})`,
        );
      }
      return network;
    });
    const binding = await this.d.bindings.allowNetwork(caller, bindingId, network, origin);
    return { alert: result(), binding };
  }

  /** Bans the alert's key (a key banned already stays banned; the alert is closed all the same). */
  async ban(caller: Caller, id: string): Promise<AlertActionResult> {
    const { bindingId, origin, result } = await this.prepare(caller, id, 'banned', () => null);
    const binding = await this.d.bindings.setStatus(caller, bindingId, 'banned', origin);
    return { alert: result(), binding };
  }

  /** Closes the alert without changing the binding (which may be gone). */
  async dismiss(caller: Caller, id: string): Promise<AlertActionResult> {
    const alert = await this.d.ds.transaction(async (tx) => {
      const before = await this.lockOpen(tx, id);
      const after = await this.closeLocked(tx, before, 'dismissed', caller.username, null);
      await this.d.audit.record(
        caller,
        AUDIT_ACTION.dismissed,
        target(id),
        auditView(before),
        auditView(after),
        tx,
      );
      return after;
    });
    return { alert, binding: null };
  }

  /**
   * The alert's binding id and the origin a binding change runs with: it
   * locks the alert, refuses one that is not open, runs `check` (which
   * answers the network to record), then closes the alert and audits.
   */
  private async prepare(
    caller: Caller,
    id: string,
    status: 'allowed' | 'banned',
    check: (a: Alert) => string | null,
  ): Promise<{ bindingId: number; origin: ChangeOrigin; result: () => Alert }> {
    // The binding id of an alert never changes: read it before the transaction.
    const first = await this.get(id);
    let locked: Alert | null = null;
    let network: string | null = null;
    let closed: Alert | null = null;
    const origin: ChangeOrigin = {
      begin: async (tx) => {
        locked = await this.lockOpen(tx, id);
        network = check(locked);
      },
      missing: () =>
        new KeypinError(
          'not_found',
          `The binding ${first.binding_id} of alert ${id} no longer exists (it was unbound or archived); ` +
            'dismiss the alert instead.',
        ),
      finish: async (tx, before, after) => {
        const open = locked!;
        closed = await this.closeLocked(tx, open, status, caller.username, network);
        await this.d.audit.record(
          caller,
          AUDIT_ACTION[status],
          target(id),
          auditView(open, before),
          auditView(closed, after),
          tx,
        );
      },
    };
    return { bindingId: first.binding_id, origin, result: () => closed! };
  }

  private async lockOpen(tx: EntityManager, id: string): Promise<Alert> {
    const a = await this.d.repo.lock(tx, id);
    if (!a) throw notFound(id);
    if (a.status !== 'open') throw notOpen(a);
    return a;
  }

  private async closeLocked(
    tx: EntityManager,
    a: Alert,
    status: Exclude<AlertStatus, 'open'>,
    actor: string,
    network: string | null,
  ): Promise<Alert> {
    const closed = await this.d.repo.close(tx, a.id, status, actor, network);
    // The row is locked and was open: only a concurrent delete could make this happen.
    if (!closed) throw notFound(a.id);
    return closed;
  }
}
