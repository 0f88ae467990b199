import { SETTING_DEFAULTS, type Settings } from '@keypin/shared';
import type { Logger } from 'pino';
import type { EntityManager } from 'typeorm';
import { describe, expect, it, vi } from 'vitest';
import type { SettingsRepository, SettingsRow } from './settings.repository';
import { SettingsService } from './settings.service';

/** The environment's networks (NETWORK_ALLOW, NETWORK_DENY, FIRST_USE_FROM). */
const ENV: Settings = {
  ...SETTING_DEFAULTS,
  networks: { allow: ['10.0.0.0/8'], deny: ['10.9.0.0/16'], first_use_from: [] },
};

/** A settings table in memory. */
function setup(rows: SettingsRow[] = []) {
  const table = new Map(rows.map((r) => [r.key, r.value]));
  const repo = {
    rows: vi.fn(() => Promise.resolve([...table].map(([key, value]) => ({ key, value })))),
    inWriteLock: <T>(work: (tx: EntityManager) => Promise<T>) => work({} as EntityManager),
    countBindings: vi.fn(() => Promise.resolve({ total: 0, banned: 0 })),
    upsert: vi.fn((_tx: unknown, key: string, value: unknown) => {
      table.set(key, JSON.parse(JSON.stringify(value)) as unknown);
      return Promise.resolve();
    }),
    remove: vi.fn((_tx: unknown, key: string) => {
      table.delete(key);
      return Promise.resolve();
    }),
  };
  const logger = { warn: vi.fn(), debug: vi.fn() } as unknown as Logger;
  const sut = new SettingsService(repo as unknown as SettingsRepository, ENV, logger, {
    envSecret: null,
    open: () => null,
  });
  return { sut, table, audit: vi.fn(() => Promise.resolve()) };
}

describe('SettingsService: networks', () => {
  it('starts from the environment’s lists', async () => {
    const { sut } = setup();
    await sut.reload();
    expect(sut.current.networks).toEqual(ENV.networks);
  });

  it('keeps the lists a change does not name, storing all three', async () => {
    const { sut, table, audit } = setup();
    const r = await sut.change(
      {
        patch: { networks: { allow: [], deny: [], first_use_from: ['192.168.0.0/16'] } },
        networkLists: ['first_use_from'],
        confirmUnbindAll: false,
      },
      'alice',
      audit,
    );
    const expected = { allow: ['10.0.0.0/8'], deny: ['10.9.0.0/16'], first_use_from: ['192.168.0.0/16'] };
    expect(r).toMatchObject({ ok: true, after: { networks: expected } });
    expect(table.get('networks')).toEqual(expected);
    await sut.reload();
    expect(sut.current.networks).toEqual(expected);
  });

  it('empties a list named empty, and combines with what is stored rather than the environment', async () => {
    const { sut, table, audit } = setup([
      { key: 'networks', value: { allow: ['172.16.0.0/12'], deny: [], first_use_from: [] } },
    ]);
    await sut.change(
      {
        patch: { networks: { allow: [], deny: ['172.16.9.0/24'], first_use_from: [] } },
        networkLists: ['deny'],
        confirmUnbindAll: false,
      },
      'alice',
      audit,
    );
    expect(table.get('networks')).toEqual({
      allow: ['172.16.0.0/12'],
      deny: ['172.16.9.0/24'],
      first_use_from: [],
    });
    await sut.change(
      {
        patch: { networks: { allow: [], deny: [], first_use_from: [] } },
        networkLists: ['allow'],
        confirmUnbindAll: false,
      },
      'alice',
      audit,
    );
    expect(table.get('networks')).toEqual({ allow: [], deny: ['172.16.9.0/24'], first_use_from: [] });
  });

  it('replaces the whole policy when the change does not say which lists it names', async () => {
    const { sut, table, audit } = setup();
    const all = { allow: [], deny: ['192.0.2.0/24'], first_use_from: [] };
    await sut.change({ patch: { networks: all }, confirmUnbindAll: false }, 'alice', audit);
    expect(table.get('networks')).toEqual(all);
  });
});
