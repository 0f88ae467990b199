import type { Alert, Binding } from '@keypin/shared';
import type { DataSource } from 'typeorm';
import { describe, expect, it, vi } from 'vitest';
import type { Caller } from '../admin/common/roles';
import type { BindingAdminRepository, BindingRecord } from '../binding/binding-admin.repository';
import { BindingAdminService } from '../binding/binding-admin.service';
import type { AlertAdminRepository } from './alert-admin.repository';
import { AlertAdminService } from './alert-admin.service';

const caller: Caller = { userId: 1, username: 'alice', role: 'admin', ip: '127.0.0.1' };
const ALERT_ID = '01900000-0000-7000-8000-000000000001';

const binding = (over: Partial<Binding> = {}): Binding => ({
  id: 7,
  token_display: 'abcd\u2026wxyz',
  rule_type: 'single',
  allowed_ips: ['10.0.0.0/24'],
  status: 'active',
  first_ip: '10.0.0.5',
  first_used_at: '2026-01-01T00:00:00.000Z',
  last_ip: null,
  last_used_at: null,
  request_count: 0,
  intercept_count: 3,
  note: null,
  created_at: '2026-01-01T00:00:00.000Z',
  updated_at: '2026-01-01T00:00:00.000Z',
  policy: null,
  requests_today: 0,
  ...over,
});

const alert = (over: Partial<Alert> = {}): Alert => ({
  id: ALERT_ID,
  binding_id: 7,
  token_display: 'abcd\u2026wxyz',
  allowed_ips: ['10.0.0.0/24'],
  attempt_ips: ['192.0.2.9', '198.51.100.1'],
  attempt_networks: ['192.0.2.9/32', '198.51.100.1/32'],
  status: 'open',
  acted_by: null,
  acted_at: null,
  allowed_network: null,
  count: 5,
  window_seconds: 300,
  first_at: '2026-01-02T00:00:00.000Z',
  last_at: '2026-01-02T00:00:10.000Z',
  occurred_at: '2026-01-02T00:00:10.000Z',
  auto_banned: false,
  delivery_status: 'delivered',
  attempts: 1,
  last_error: null,
  last_attempt_at: null,
  delivered_at: null,
  ...over,
});

/** The service over a real BindingAdminService, both on mocked repositories sharing one event log. */
function setup(opts: { alert?: Alert | null; binding?: Binding | null } = {}) {
  let current: Alert | null = opts.alert === undefined ? alert() : opts.alert;
  const b: Binding | null = opts.binding === undefined ? binding() : opts.binding;
  const events: string[] = [];
  const tx = {};
  const ds = {
    transaction: async <T>(fn: (m: unknown) => Promise<T>): Promise<T> => {
      events.push('begin');
      try {
        const out = await fn(tx);
        events.push('commit');
        return out;
      } catch (err) {
        events.push('rollback');
        throw err;
      }
    },
  } as unknown as DataSource;
  const alerts = {
    list: vi.fn(),
    get: vi.fn(() => Promise.resolve(current)),
    lock: vi.fn(() => {
      events.push('lock alert');
      return Promise.resolve(current);
    }),
    close: vi.fn(
      (_tx: unknown, _id: string, status: Alert['status'], actor: string, network: string | null) => {
        events.push(`close ${status}`);
        current = {
          ...current!,
          status,
          acted_by: actor,
          acted_at: '2026-01-03T00:00:00.000Z',
          allowed_network: network,
        };
        return Promise.resolve(current);
      },
    ),
  };
  const rec = (x: Binding): BindingRecord => ({ binding: x, hashHex: 'bb'.repeat(32) });
  const bindingRepo = {
    lock: vi.fn(() => {
      events.push('lock binding');
      return Promise.resolve(b ? rec(b) : null);
    }),
    setNetworks: vi.fn((_tx: unknown, _id: number, rule_type: Binding['rule_type'], nets: string[]) => {
      events.push(`set networks ${nets.join(' ')}`);
      return Promise.resolve(rec({ ...b!, rule_type, allowed_ips: nets }));
    }),
    setStatus: vi.fn((_tx: unknown, _id: number, status: Binding['status']) => {
      events.push(`set status ${status}`);
      return Promise.resolve(rec({ ...b!, status }));
    }),
  };
  const audit = {
    record: vi.fn((_c: Caller, action: string) => {
      events.push(`audit ${action}`);
      return Promise.resolve();
    }),
  };
  const announce = vi.fn(() => {
    events.push('announce');
    return Promise.resolve();
  });
  const bindings = new BindingAdminService({
    ds,
    repo: bindingRepo as unknown as BindingAdminRepository,
    audit,
    hashKey: (c) => c,
    keyRules: () => ({ relay: 'newapi', tokenNormalize: 'newapi', keyCase: 'sensitive' }),
    defaultPolicy: () => null,
    storedUsage: () => Promise.resolve({ today: 0, month: 0 }),
    liveCounts: () => Promise.resolve(null),
    announce,
  });
  const sut = new AlertAdminService({
    ds,
    repo: alerts as unknown as AlertAdminRepository,
    bindings,
    audit,
  });
  return { sut, events, audit, alerts, bindingRepo, announce };
}

describe('AlertAdminService', () => {
  it('allows a network: alert locked first, binding changed, alert closed and audited in one transaction, then announced', async () => {
    const { sut, events, audit } = setup();
    const out = await sut.allowNetwork(caller, ALERT_ID, '192.0.2.9');
    expect(events).toEqual([
      'begin',
      'lock alert',
      'lock binding',
      'set networks 10.0.0.0/24 192.0.2.9/32',
      'close allowed',
      'audit alert.allow_network',
      'commit',
      'announce',
    ]);
    expect(out.alert).toMatchObject({
      status: 'allowed',
      acted_by: 'alice',
      allowed_network: '192.0.2.9/32',
    });
    expect(out.binding).toMatchObject({
      rule_type: 'multiple',
      allowed_ips: ['10.0.0.0/24', '192.0.2.9/32'],
    });
    expect(audit.record).toHaveBeenCalledWith(
      caller,
      'alert.allow_network',
      `alert:${ALERT_ID}`,
      expect.objectContaining({
        alert_id: ALERT_ID,
        status: 'open',
        binding_id: 7,
        binding: expect.objectContaining({ rule_type: 'single' }),
      }),
      expect.objectContaining({
        alert_id: ALERT_ID,
        status: 'allowed',
        network: '192.0.2.9/32',
        binding: expect.objectContaining({ rule_type: 'multiple' }),
      }),
      expect.anything(),
    );
  });

  it('refuses a network that is not one of the alert’s with a 422 naming network, writing nothing', async () => {
    const { sut, events, announce } = setup();
    await expect(sut.allowNetwork(caller, ALERT_ID, '203.0.113.0/24')).rejects.toMatchObject({
      code: 'validation_failed',
      extra: { field: 'network' },
      message: expect.stringContaining('192.0.2.9/32, 198.51.100.1/32'),
    });
    await expect(sut.allowNetwork(caller, ALERT_ID, 'not-a-network')).rejects.toMatchObject({
      code: 'validation_failed',
      extra: { field: 'network' },
    });
    expect(events).toEqual(['begin', 'lock alert', 'rollback']);
    expect(announce).not.toHaveBeenCalled();
  });

  it('refuses to act twice: 409 alert_not_open saying who acted and how', async () => {
    const { sut, events } = setup();
    await sut.dismiss(caller, ALERT_ID);
    events.length = 0;
    for (const act of [
      () => sut.dismiss(caller, ALERT_ID),
      () => sut.ban(caller, ALERT_ID),
      () => sut.allowNetwork(caller, ALERT_ID, '192.0.2.9/32'),
    ]) {
      await expect(act()).rejects.toMatchObject({
        code: 'alert_not_open',
        message: expect.stringMatching(/was dismissed already by alice at 2026-01-03T00:00:00\.000Z/),
        extra: { alert_status: 'dismissed' },
      });
    }
    expect(events.filter((e) => e !== 'begin' && e !== 'lock alert' && e !== 'rollback')).toEqual([]);
  });

  it('bans the key through the binding service and closes the alert', async () => {
    const { sut, events } = setup();
    const out = await sut.ban(caller, ALERT_ID);
    expect(events).toEqual([
      'begin',
      'lock alert',
      'lock binding',
      'set status banned',
      'close banned',
      'audit alert.ban',
      'commit',
      'announce',
    ]);
    expect(out).toMatchObject({ alert: { status: 'banned' }, binding: { status: 'banned' } });
  });

  it('closes the alert of a key banned already, without a binding change', async () => {
    const { sut, events } = setup({ binding: binding({ status: 'banned' }) });
    await sut.ban(caller, ALERT_ID);
    expect(events).toEqual([
      'begin',
      'lock alert',
      'lock binding',
      'close banned',
      'audit alert.ban',
      'commit',
    ]);
  });

  it('refuses allow-network on a banned key with 409 binding_banned, leaving the alert open', async () => {
    const { sut, events, alerts } = setup({ binding: binding({ status: 'banned' }) });
    await expect(sut.allowNetwork(caller, ALERT_ID, '192.0.2.9/32')).rejects.toMatchObject({
      code: 'binding_banned',
    });
    expect(alerts.close).not.toHaveBeenCalled();
    expect(events.at(-1)).toBe('rollback');
  });

  it('answers 404 naming the alert’s binding when it no longer exists; dismissing still works', async () => {
    const { sut } = setup({ binding: null });
    await expect(sut.ban(caller, ALERT_ID)).rejects.toMatchObject({
      code: 'not_found',
      message: expect.stringMatching(/binding 7 of alert .* no longer exists.*dismiss the alert instead/),
    });
    await expect(sut.allowNetwork(caller, ALERT_ID, '192.0.2.9/32')).rejects.toMatchObject({
      code: 'not_found',
    });
    expect((await sut.dismiss(caller, ALERT_ID)).alert.status).toBe('dismissed');
  });

  it('answers 404 for an unknown alert', async () => {
    const { sut, events } = setup({ alert: null });
    await expect(sut.get(ALERT_ID)).rejects.toMatchObject({ code: 'not_found' });
    await expect(sut.ban(caller, ALERT_ID)).rejects.toMatchObject({ code: 'not_found' });
    await expect(sut.dismiss(caller, ALERT_ID)).rejects.toMatchObject({ code: 'not_found' });
    expect(events).toEqual(['begin', 'lock alert', 'rollback']);
  });

  it('dismisses with its own audit row and no binding change', async () => {
    const { sut, events, audit, announce } = setup();
    const out = await sut.dismiss(caller, ALERT_ID);
    expect(out).toEqual({ alert: expect.objectContaining({ status: 'dismissed' }), binding: null });
    expect(events).toEqual(['begin', 'lock alert', 'close dismissed', 'audit alert.dismiss', 'commit']);
    expect(audit.record).toHaveBeenCalledWith(
      caller,
      'alert.dismiss',
      `alert:${ALERT_ID}`,
      { alert_id: ALERT_ID, status: 'open', binding_id: 7 },
      { alert_id: ALERT_ID, status: 'dismissed', binding_id: 7 },
      expect.anything(),
    );
    expect(announce).not.toHaveBeenCalled();
  });
});
