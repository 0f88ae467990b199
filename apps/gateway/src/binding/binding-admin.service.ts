import {
  type Binding,
  type BindingStatus,
  type BindingUsage,
  type KeyPolicy,
  POLICY_FIELDS,
  validatePolicy,
  canonicalPastedKey,
  isPrintableKey,
  type CreateBindingRequest,
  maskKey,
  type RuleType,
  type KeyRules,
  validateNetworks,
  cidrContains,
  cidrErrorMessage,
  formatCidr,
  parseCidr,
  type Cidr,
} from '@keypin/shared';
import type { DataSource, EntityManager } from 'typeorm';
import { KeypinError } from '../infra/http/all-exceptions.filter';
import type { Caller } from '../admin/common/roles';
import type { Paging } from '../admin/common/paging';
import type { AuditRepository } from '../audit/audit.repository';
import { invalid } from '../admin/common/validation';
import { type BindingSearch, parseBindingSearch } from './binding-search';
import type { BindingFilter, BindingRecord, BindingAdminRepository } from './binding-admin.repository';
import type { UsageTotals } from './binding.repository';

/** Where the service writes its audit rows. */
export type AuditSink = Pick<AuditRepository, 'record'>;

export interface BindingAdminServiceDeps {
  ds: DataSource;
  repo: BindingAdminRepository;
  audit: AuditSink;
  /** HMAC of a canonical key, as the proxy computes it. */
  hashKey: (canonical: string) => string;
  /** The current key normalisation setting. */
  keyRules: () => KeyRules;
  /** The default policy in force (settings), for a binding without its own. */
  defaultPolicy: () => KeyPolicy | null;
  /** Requests forwarded today and this month, as the usage batches wrote them. */
  storedUsage: (bindingId: number) => Promise<UsageTotals>;
  /** The live quota counters (Redis), when they can be read; null otherwise. */
  liveCounts: (bindingId: number) => Promise<{ day: number; month: number } | null>;
  /**
   * Tells every gateway instance that a binding changed (after the commit).
   * Must not throw: the PostgreSQL trigger is the fallback path.
   */
  announce: (hashHex: string) => Promise<void>;
}

/**
 * A binding change made on behalf of another record (an alert action,
 * docs/alerts.md): its checks and its own write share the change's
 * transaction, and it writes the change's one audit row.
 */
export interface ChangeOrigin {
  /** First in the transaction, before the binding is locked: lock and check the record (throw to refuse). */
  begin(tx: EntityManager): Promise<void>;
  /** The error when the binding does not exist (default: 404 "No binding N."). */
  missing?(): KeypinError;
  /**
   * Last in the transaction: records the outcome and the audit row.
   * `after` is `before` when the binding was already as asked.
   */
  finish(tx: EntityManager, before: Binding, after: Binding): Promise<void>;
}

/** True when one of `networks` (canonical CIDRs) holds all of `net`. */
function covered(networks: readonly string[], net: Cidr): boolean {
  return networks.some((text) => {
    const r = parseCidr(text);
    return r.ok && r.cidr.prefix <= net.prefix && cidrContains(r.cidr, net);
  });
}

/** Networks for a rule, checked strictly; the canonical forms to store, or a 422 naming `allowed_ips`. */
export function checkNetworks(rule: RuleType, entries: readonly unknown[]): string[] {
  const r = validateNetworks(rule, entries);
  if (!r.ok) throw invalid('allowed_ips', r.message);
  return r.networks;
}

/** The canonical form of a key given to pre-bind, or a 422 naming `key`. */
export function checkKey(raw: string, rules: KeyRules): string {
  if (/[\s\p{Cc}]/u.test(raw.trim())) {
    throw invalid('key', 'must be the key alone, without spaces, control characters or "Bearer "');
  }
  const canonical = canonicalPastedKey(raw, rules);
  if (canonical === null || canonical === '') {
    throw invalid(
      'key',
      `has nothing left after normalisation (relay ${rules.relay}, ${rules.tokenNormalize})`,
    );
  }
  if (!isPrintableKey(canonical)) throw invalid('key', 'must be printable ASCII');
  return canonical;
}

const target = (id: number) => `binding:${id}`;
const notFound = (id: number) => new KeypinError('not_found', `No binding ${id}.`);

/**
 * The admin side of bindings: list and search, pre-bind, rule edits, ban,
 * unban and unbind. Every change commits together with its audit row, then
 * is announced so every instance enforces it within a second.
 */
export class BindingAdminService {
  constructor(private readonly d: BindingAdminServiceDeps) {}

  /** Reads a search string under the current normalisation (a raw key is hashed, never kept). */
  search(raw: string): BindingSearch | null {
    return parseBindingSearch(raw, this.d.keyRules(), this.d.hashKey);
  }

  list(filter: BindingFilter, p: Paging): Promise<{ items: Binding[]; total: number }> {
    return this.d.repo.list(filter, p.pageSize, p.offset);
  }

  async get(id: number): Promise<Binding> {
    const b = await this.d.repo.findById(id);
    if (!b) throw notFound(id);
    return b;
  }

  async create(caller: Caller, req: CreateBindingRequest): Promise<Binding> {
    const canonical = checkKey(req.key, this.d.keyRules());
    const networks = checkNetworks(req.rule_type, req.allowed_ips);
    const note = req.note?.trim() ? req.note.trim() : null;
    const hashHex = this.d.hashKey(canonical);
    const created = await this.d.ds.transaction(async (tx) => {
      const rec = await this.d.repo.create(tx, {
        hashHex,
        tokenDisplay: maskKey(canonical),
        ruleType: req.rule_type,
        networks,
        note,
      });
      if (!rec)
        throw new KeypinError('already_bound', 'This key is bound already; edit or unbind that binding.');
      await this.d.audit.record(caller, 'binding.create', target(rec.binding.id), null, rec.binding, tx);
      return rec;
    });
    await this.d.announce(created.hashHex);
    return created.binding;
  }

  async updateNetworks(
    caller: Caller,
    id: number,
    rule: RuleType,
    entries: readonly unknown[],
  ): Promise<Binding> {
    const networks = checkNetworks(rule, entries);
    return this.change(caller, id, 'binding.update_ip', (b) =>
      b.rule_type === rule && sameList(b.allowed_ips, networks)
        ? null
        : (tx) => this.d.repo.setNetworks(tx, id, rule, networks),
    );
  }

  /**
   * Adds one network to the key's allowed networks, rule `multiple`
   * (docs/contract.md 11). A network the binding allows already (inside one
   * of its networks, or rule `all`) leaves it as it is; a banned key is
   * refused with 409 `binding_banned` (allowing a network does not lift a ban).
   */
  allowNetwork(caller: Caller, id: number, network: string, origin?: ChangeOrigin): Promise<Binding> {
    const parsed = parseCidr(network);
    if (!parsed.ok) throw invalid('network', cidrErrorMessage(network, parsed.error));
    const net = parsed.cidr;
    return this.change(
      caller,
      id,
      'binding.allow_network',
      (b) => {
        if (b.status === 'banned') {
          throw new KeypinError(
            'binding_banned',
            `The key ${b.token_display} is banned: lift the ban before allowing a network for it.`,
          );
        }
        if (b.rule_type === 'all' || covered(b.allowed_ips, net)) return null;
        const networks = checkNetworks('multiple', [...b.allowed_ips, formatCidr(net)]);
        return (tx) => this.d.repo.setNetworks(tx, id, 'multiple', networks);
      },
      origin,
    );
  }

  /** Sets or clears (null: the default applies) the key's own policy (docs/contract.md 9). */
  setPolicy(caller: Caller, id: number, input: unknown): Promise<Binding> {
    if (input === undefined) throw invalid('policy', 'is required: a policy object, or null for the default');
    const r = validatePolicy(input, 'policy');
    if (!r.ok) throw invalid(r.field, r.message);
    const policy = r.value;
    return this.change(caller, id, 'binding.policy', (b) =>
      samePolicy(b.policy, policy) ? null : (tx) => this.d.repo.setPolicy(tx, id, policy),
    );
  }

  /**
   * A key's use of its quotas. Where a quota applies and Redis answers,
   * the figure is the quota's own live counter (what enforcement sees; it
   * starts from the day's and month's stored counts, so it counts the
   * calendar day and month); otherwise the forwarded requests the usage
   * batches wrote to PostgreSQL (a few seconds behind). `month` is never
   * less than `today`.
   */
  async usage(id: number): Promise<BindingUsage> {
    const b = await this.get(id);
    const own = b.policy;
    const effective = own ?? this.d.defaultPolicy();
    const limitDay = effective?.requests_per_day ?? null;
    const limitMonth = effective?.requests_per_month ?? null;
    const [stored, live] = await Promise.all([
      this.d.storedUsage(id),
      limitDay !== null || limitMonth !== null ? this.d.liveCounts(id).catch(() => null) : null,
    ]);
    const today = limitDay !== null && live !== null ? live.day : stored.today;
    const month = limitMonth !== null && live !== null ? live.month : stored.month;
    return {
      today,
      month: Math.max(month, today),
      limit_day: limitDay,
      limit_month: limitMonth,
      effective_policy: effective,
      policy_source: own !== null ? 'binding' : effective !== null ? 'default' : 'none',
    };
  }

  setStatus(caller: Caller, id: number, status: BindingStatus, origin?: ChangeOrigin): Promise<Binding> {
    return this.change(
      caller,
      id,
      status === 'banned' ? 'binding.ban' : 'binding.unban',
      (b) => (b.status === status ? null : (tx) => this.d.repo.setStatus(tx, id, status)),
      origin,
    );
  }

  /** Removes a binding (a copy stays in the archive); the key binds afresh on its next use. */
  async unbind(caller: Caller, id: number): Promise<Binding> {
    const removed = await this.d.ds.transaction(async (tx) => {
      const rec = await this.d.repo.remove(tx, id, `unbound by ${caller.username}`);
      if (!rec) throw notFound(id);
      await this.d.audit.record(caller, 'binding.unbind', target(id), rec.binding, null, tx);
      return rec;
    });
    await this.d.announce(removed.hashHex);
    return removed.binding;
  }

  /**
   * Locks the row, asks `plan` what to write (null: nothing differs, so
   * nothing is written or audited), writes it with its audit row, commits,
   * then announces the change. With an `origin`, the origin's checks open
   * the transaction and its `finish` (which writes the audit row) closes it,
   * whether the binding changed or not.
   */
  private async change(
    caller: Caller,
    id: number,
    action: string,
    plan: (b: Binding) => ((tx: EntityManager) => Promise<BindingRecord | null>) | null,
    origin?: ChangeOrigin,
  ): Promise<Binding> {
    const out = await this.d.ds.transaction(async (tx) => {
      await origin?.begin(tx);
      const missing = () => origin?.missing?.() ?? notFound(id);
      const before = await this.d.repo.lock(tx, id);
      if (!before) throw missing();
      const write = plan(before.binding);
      const after = write === null ? before : await write(tx);
      if (!after) throw missing();
      if (origin) await origin.finish(tx, before.binding, after.binding);
      else if (write !== null) {
        await this.d.audit.record(caller, action, target(id), before.binding, after.binding, tx);
      }
      return { rec: after, changed: write !== null };
    });
    if (out.changed) await this.d.announce(out.rec.hashHex);
    return out.rec.binding;
  }
}

function samePolicy(a: KeyPolicy | null, b: KeyPolicy | null): boolean {
  if (a === null || b === null) return a === b;
  return POLICY_FIELDS.every((f) => JSON.stringify(a[f]) === JSON.stringify(b[f]));
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
