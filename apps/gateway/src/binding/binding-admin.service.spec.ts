import type { KeyRules } from '@keypin/shared';
import type { Binding } from '@keypin/shared';
import type { DataSource } from 'typeorm';
import { describe, expect, it, vi } from 'vitest';
import { KeypinError } from '../infra/http/all-exceptions.filter';
import type { Caller } from '../admin/common/roles';
import type { BindingRecord, BindingAdminRepository } from './binding-admin.repository';
import { BindingAdminService, checkKey, checkNetworks } from './binding-admin.service';

const NEWAPI: KeyRules = { relay: 'newapi', tokenNormalize: 'newapi', keyCase: 'sensitive' };
const NONE: KeyRules = { relay: 'newapi', tokenNormalize: 'none', keyCase: 'sensitive' };

const caller: Caller = { userId: 1, username: 'alice', role: 'admin', ip: '127.0.0.1' };

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
  intercept_count: 0,
  note: null,
  created_at: '2026-01-01T00:00:00.000Z',
  updated_at: '2026-01-01T00:00:00.000Z',
  policy: null,
  requests_today: 0,
  ...over,
});

const rec = (b: Binding): BindingRecord => ({ binding: b, hashHex: 'aa'.repeat(32) });

function setup(current: Binding | null = binding()) {
  const events: string[] = [];
  const tx = { query: vi.fn() };
  const found = (r: BindingRecord | null) => Promise.resolve(r);
  const repo = {
    lock: vi.fn(() => found(current ? rec(current) : null)),
    setStatus: vi.fn((_tx: unknown, _id: number, status: Binding['status']) =>
      found(rec({ ...current!, status, updated_at: 'later' })),
    ),
    setNetworks: vi.fn((_tx: unknown, _id: number, rule_type: Binding['rule_type'], nets: string[]) =>
      found(rec({ ...current!, rule_type, allowed_ips: nets })),
    ),
    create: vi.fn(() => found(rec(binding({ id: 9, first_ip: null, first_used_at: null })))),
    remove: vi.fn(() => found(current ? rec(current) : null)),
  };
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
  };
  const audit = {
    record: vi.fn((_c: Caller, action: string) => {
      events.push(`audit ${action}`);
      return Promise.resolve();
    }),
  };
  const announce = vi.fn((hash: string) => {
    events.push(`announce ${hash.slice(0, 4)}`);
    return Promise.resolve();
  });
  const hashKey = vi.fn((canonical: string) => `hash:${canonical}`);
  const sut = new BindingAdminService({
    ds: ds as unknown as DataSource,
    repo: repo as unknown as BindingAdminRepository,
    audit,
    hashKey,
    keyRules: () => NEWAPI,
    defaultPolicy: () => null,
    storedUsage: () => Promise.resolve({ today: 0, month: 0 }),
    liveCounts: () => Promise.resolve(null),
    announce,
  });
  return { sut, repo, audit, announce, events, hashKey, tx };
}

describe('checkNetworks', () => {
  it.each([
    ['single', ['10.0.0.0/24'], ['10.0.0.0/24']],
    ['single', ['10.0.0.1'], ['10.0.0.1/32']],
    ['multiple', ['2001:DB8::/32', '10.0.0.1/32'], ['2001:db8::/32', '10.0.0.1/32']],
    ['all', [], []],
  ] as const)('accepts %s %j as %j', (rule, entries, expected) => {
    expect(checkNetworks(rule, entries)).toEqual(expected);
  });

  it.each([
    ['single', ['10.0.0.1/24']],
    ['single', ['0.0.0.0/33']],
    ['single', ['010.0.0.0/8']],
    ['single', []],
    ['single', ['10.0.0.0/24', '10.0.1.0/24']],
    ['multiple', []],
    ['multiple', Array.from({ length: 101 }, (_, i) => `10.0.${i}.0/24`)],
    ['all', ['10.0.0.0/8']],
    ['multiple', [5]],
  ] as const)('refuses %s %j with a 422 naming allowed_ips', (rule, entries) => {
    try {
      checkNetworks(rule, entries);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(KeypinError);
      expect((err as KeypinError).code).toBe('validation_failed');
      expect((err as KeypinError).extra).toEqual({ field: 'allowed_ips' });
    }
  });
});

describe('checkKey', () => {
  it('returns the canonical form', () => {
    expect(checkKey(' sk-abc123-7 ', NEWAPI)).toBe('abc123');
    expect(checkKey('sk-proj-abc', NONE)).toBe('sk-proj-abc');
  });

  it.each(['sk-', '-x', '   ', 'Bearer abc', 'ab\u0000c', 'a\tb'])('refuses %j naming key', (raw) => {
    expect(() => checkKey(raw, NEWAPI)).toThrow(KeypinError);
    try {
      checkKey(raw, NEWAPI);
    } catch (err) {
      expect((err as KeypinError).extra).toEqual({ field: 'key' });
      expect((err as KeypinError).message).not.toContain(raw.trim() || 'never');
    }
  });
});

describe('BindingAdminService', () => {
  it('bans inside one transaction with its audit row, then announces', async () => {
    const { sut, audit, events } = setup();
    const out = await sut.setStatus(caller, 7, 'banned');
    expect(out.status).toBe('banned');
    expect(events).toEqual(['begin', 'audit binding.ban', 'commit', 'announce aaaa']);
    expect(audit.record).toHaveBeenCalledWith(
      caller,
      'binding.ban',
      'binding:7',
      expect.objectContaining({ status: 'active' }),
      expect.objectContaining({ status: 'banned' }),
      expect.anything(),
    );
  });

  it('writes, audits and announces nothing when nothing differs', async () => {
    const { sut, repo, events } = setup(binding({ status: 'banned' }));
    expect((await sut.setStatus(caller, 7, 'banned')).status).toBe('banned');
    const same = await sut.updateNetworks(caller, 7, 'single', ['10.0.0.0/24']);
    expect(same.allowed_ips).toEqual(['10.0.0.0/24']);
    expect(repo.setStatus).not.toHaveBeenCalled();
    expect(repo.setNetworks).not.toHaveBeenCalled();
    expect(events).toEqual(['begin', 'commit', 'begin', 'commit']);
  });

  it('stores canonical networks', async () => {
    const { sut, repo } = setup();
    const out = await sut.updateNetworks(caller, 7, 'multiple', ['10.0.0.1', '2001:DB8::/32']);
    expect(repo.setNetworks).toHaveBeenCalledWith(expect.anything(), 7, 'multiple', [
      '10.0.0.1/32',
      '2001:db8::/32',
    ]);
    expect(out.allowed_ips).toEqual(['10.0.0.1/32', '2001:db8::/32']);
  });

  it('answers 404 for a missing binding and announces nothing', async () => {
    const { sut, events, announce } = setup(null);
    await expect(sut.setStatus(caller, 7, 'banned')).rejects.toMatchObject({ code: 'not_found' });
    await expect(sut.unbind(caller, 7)).rejects.toMatchObject({ code: 'not_found' });
    expect(events).toEqual(['begin', 'rollback', 'begin', 'rollback']);
    expect(announce).not.toHaveBeenCalled();
  });

  it('validates before it opens a transaction', async () => {
    const { sut, events } = setup();
    await expect(sut.updateNetworks(caller, 7, 'single', ['10.0.0.1/24'])).rejects.toMatchObject({
      code: 'validation_failed',
    });
    expect(events).toEqual([]);
  });

  it('pre-binds the hash of the canonical key with its mask, never the raw key', async () => {
    const { sut, repo, hashKey, audit } = setup();
    await sut.create(caller, { key: 'sk-secret12345-3', rule_type: 'all', allowed_ips: [], note: '  hi ' });
    expect(hashKey).toHaveBeenCalledWith('secret12345');
    expect(repo.create).toHaveBeenCalledWith(expect.anything(), {
      hashHex: 'hash:secret12345',
      tokenDisplay: 'se\u202645',
      ruleType: 'all',
      networks: [],
      note: 'hi',
    });
    expect(JSON.stringify(audit.record.mock.calls)).not.toContain('secret12345');
  });

  it('answers 409 already_bound when the key is bound', async () => {
    const { sut, repo, announce } = setup();
    repo.create.mockResolvedValueOnce(null);
    await expect(
      sut.create(caller, { key: 'abc123', rule_type: 'single', allowed_ips: ['10.0.0.0/24'] }),
    ).rejects.toMatchObject({ code: 'already_bound' });
    expect(announce).not.toHaveBeenCalled();
  });

  it('archives an unbound binding with who did it', async () => {
    const { sut, repo, events } = setup();
    const out = await sut.unbind(caller, 7);
    expect(out.id).toBe(7);
    expect(repo.remove).toHaveBeenCalledWith(expect.anything(), 7, 'unbound by alice');
    expect(events).toEqual(['begin', 'audit binding.unbind', 'commit', 'announce aaaa']);
  });
});

describe('BindingAdminService.allowNetwork (an alert action, docs/alerts.md)', () => {
  it('adds the network to the allowed ones, rule multiple, then announces', async () => {
    const { sut, repo, events } = setup();
    const out = await sut.allowNetwork(caller, 7, '192.0.2.9');
    expect(repo.setNetworks).toHaveBeenCalledWith(expect.anything(), 7, 'multiple', [
      '10.0.0.0/24',
      '192.0.2.9/32',
    ]);
    expect(out).toMatchObject({ rule_type: 'multiple', allowed_ips: ['10.0.0.0/24', '192.0.2.9/32'] });
    expect(events).toEqual(['begin', 'audit binding.allow_network', 'commit', 'announce aaaa']);
  });

  it.each([
    ['inside an allowed network', binding({ allowed_ips: ['10.0.0.0/24'] }), '10.0.0.128/25'],
    ['the same network', binding({ allowed_ips: ['10.0.0.0/24'] }), '10.0.0.0/24'],
    ['under rule all', binding({ rule_type: 'all', allowed_ips: [] }), '192.0.2.9/32'],
  ])('leaves the binding as it is for a network %s', async (_what, b, net) => {
    const { sut, repo, events } = setup(b);
    expect(await sut.allowNetwork(caller, 7, net)).toEqual(b);
    expect(repo.setNetworks).not.toHaveBeenCalled();
    expect(events).toEqual(['begin', 'commit']);
  });

  it('still adds a wider network than the allowed one', async () => {
    const { sut, repo } = setup(binding({ allowed_ips: ['10.0.0.0/25'] }));
    await sut.allowNetwork(caller, 7, '10.0.0.0/24');
    expect(repo.setNetworks).toHaveBeenCalledWith(expect.anything(), 7, 'multiple', [
      '10.0.0.0/25',
      '10.0.0.0/24',
    ]);
  });

  it('refuses a banned key with 409 binding_banned, writing nothing', async () => {
    const { sut, repo, events, announce } = setup(binding({ status: 'banned' }));
    await expect(sut.allowNetwork(caller, 7, '192.0.2.9/32')).rejects.toMatchObject({
      code: 'binding_banned',
      message: expect.stringMatching(/banned: lift the ban/),
    });
    expect(repo.setNetworks).not.toHaveBeenCalled();
    expect(events).toEqual(['begin', 'rollback']);
    expect(announce).not.toHaveBeenCalled();
  });

  it('refuses a 101st network with a 422', async () => {
    const full = Array.from({ length: 100 }, (_, i) => `10.1.${i}.0/24`);
    const { sut } = setup(binding({ rule_type: 'multiple', allowed_ips: full }));
    await expect(sut.allowNetwork(caller, 7, '192.0.2.9/32')).rejects.toMatchObject({
      code: 'validation_failed',
    });
  });

  it('runs an origin around the change: its checks first, its audit row in place of the binding’s', async () => {
    const { sut, events, audit } = setup();
    const origin = {
      begin: vi.fn(() => {
        events.push('origin begin');
        return Promise.resolve();
      }),
      finish: vi.fn((_tx: unknown, before: Binding, after: Binding) => {
        events.push(`origin finish ${before.rule_type}→${after.rule_type}`);
        return Promise.resolve();
      }),
    };
    await sut.allowNetwork(caller, 7, '192.0.2.9/32', origin);
    expect(events).toEqual([
      'begin',
      'origin begin',
      'origin finish single→multiple',
      'commit',
      'announce aaaa',
    ]);
    expect(audit.record).not.toHaveBeenCalled();
  });

  it('lets an origin name a missing binding, and still finishes an unchanged one', async () => {
    const gone = setup(null);
    const missing = () => new KeypinError('not_found', 'The binding of this alert no longer exists');
    const origin = { begin: () => Promise.resolve(), finish: vi.fn(() => Promise.resolve()), missing };
    await expect(gone.sut.setStatus(caller, 7, 'banned', origin)).rejects.toMatchObject({
      message: 'The binding of this alert no longer exists',
    });
    const banned = setup(binding({ status: 'banned' }));
    await banned.sut.setStatus(caller, 7, 'banned', origin);
    expect(origin.finish).toHaveBeenCalledTimes(1);
    expect(banned.events).toEqual(['begin', 'commit']);
    expect(banned.announce).not.toHaveBeenCalled();
  });
});
