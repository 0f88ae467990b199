import { randomBytes } from 'node:crypto';
import { type Settings, SETTING_DEFAULTS } from '@keypin/shared';
import pino from 'pino';
import type { DataSource } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AlertRepository } from '../../src/alert/alert.repository';
import { AlertService } from '../../src/alert/alert.service';
import { createDataSource, runMigrations } from '../../src/infra/database/data-source';
import { ensureDatabase } from '../../src/infra/database/ensure-database';
import { uuidv7 } from '../../src/infra/uuid';
import { InterceptWriter } from '../../src/intercept/intercept-writer.service';
import { InterceptRepository } from '../../src/intercept/intercept.repository';
import type { InterceptEvent } from '../../src/intercept/intercept.types';
import { SettingsRepository } from '../../src/settings/settings.repository';
import { SettingsService } from '../../src/settings/settings.service';
import { dropStores, freshStores } from '../support/stores';

/**
 * Alert windows in-process against the real PostgreSQL: each binding's
 * window is evaluated under a per-binding advisory lock, so evaluators on
 * any number of instances (here: two pools) raise exactly one alert per
 * window, however their evaluations and the intercepts' arrival interleave.
 */

const logger = pino({ level: 'silent' });
const stores = freshStores('alert_window');
const THRESHOLD = 5;
const WINDOW_S = 60;
/** Two "instances", each with its own pool. */
let dsA: DataSource;
let dsB: DataSource;

beforeAll(async () => {
  await ensureDatabase(stores.databaseUrl);
  dsA = createDataSource(stores.databaseUrl, 8);
  await dsA.initialize();
  await runMigrations(dsA);
  dsB = createDataSource(stores.databaseUrl, 8);
  await dsB.initialize();
});

afterAll(async () => {
  await dsA?.destroy();
  await dsB?.destroy();
  await dropStores(stores.dbName, stores.redisPrefix);
});

/** Settings as the table gives them (no rows: these defaults), read from PostgreSQL. */
async function settingsFor(ds: DataSource, over: Partial<Settings> = {}): Promise<SettingsService> {
  const s = new SettingsService(
    new SettingsRepository(ds),
    { ...SETTING_DEFAULTS, alert_threshold_count: THRESHOLD, alert_threshold_seconds: WINDOW_S, ...over },
    logger,
    { envSecret: null, open: () => null },
  );
  await s.reload();
  return s;
}

async function alertServices(over: Partial<Settings> = {}): Promise<[AlertService, AlertService]> {
  return [
    new AlertService(new AlertRepository(dsA), await settingsFor(dsA, over), logger),
    new AlertService(new AlertRepository(dsB), await settingsFor(dsB, over), logger),
  ];
}

async function newBinding(): Promise<number> {
  const rows: { id: string }[] = await dsA.query(
    `INSERT INTO bindings (key_hash, token_display, rule_type, allowed_ips)
     VALUES ($1, 'sk-a\u2026lert', 'single', '{203.0.113.7/32}') RETURNING id`,
    [randomBytes(32)],
  );
  return Number(rows[0]!.id);
}

/** Well in the past: no window is still open, so every batch is evaluated in PostgreSQL. */
const T0 = Math.floor(Date.now() / 1000) * 1000 - 30 * 60_000;

function intercept(bindingId: number, atMs: number, n: number, count = 1): InterceptEvent {
  return {
    id: uuidv7(atMs),
    bindingId,
    tokenDisplay: 'sk-a\u2026lert',
    attemptIp: `198.51.100.${(n % 250) + 1}`,
    allowedIps: ['203.0.113.7/32'],
    reason: 'ip_not_allowed',
    method: 'POST',
    path: '/v1/chat/completions',
    userAgent: 'medium-spec',
    enforced: true,
    at: new Date(atMs),
    count,
  };
}

interface AlertRow {
  id: string;
  first_at: Date;
  window_end: Date;
  count: number;
  auto_banned: boolean;
  attempt_ips: string[];
}

async function alertsOf(bindingId: number): Promise<AlertRow[]> {
  return dsA.query(
    `SELECT id, first_at, window_end, count, auto_banned, array(SELECT host(x) FROM unnest(attempt_ips) x) AS attempt_ips
       FROM alerts WHERE binding_id = $1 ORDER BY first_at`,
    [bindingId],
  );
}

async function interceptsOf(
  bindingId: number,
): Promise<{ id: string; alerted: boolean; alert_id: string | null }[]> {
  return dsA.query(
    `SELECT id, alerted, alert_id FROM intercept_logs WHERE binding_id = $1 ORDER BY intercepted_at, id`,
    [bindingId],
  );
}

describe('alert windows under the per-binding lock', () => {
  it('30 concurrent evaluations on two pools over the same intercepts raise each window once', async () => {
    const bindingId = await newBinding();
    // Window 1: 12 requests in 44 s. Window 2: 3 records standing for 5
    // requests (the threshold counts requests). Then one lone request.
    const w1 = Array.from({ length: 12 }, (_, i) => intercept(bindingId, T0 + i * 4000, i));
    const w2 = [
      intercept(bindingId, T0 + 100_000, 20, 2),
      intercept(bindingId, T0 + 110_000, 21, 1),
      intercept(bindingId, T0 + 120_000, 22, 2),
    ];
    const lone = intercept(bindingId, T0 + 300_000, 30);
    expect(await new InterceptRepository(dsA).insertBatch([...w1, ...w2, lone])).toBe(16);

    const [a, b] = await alertServices();
    const evaluations = await Promise.all(
      Array.from({ length: 30 }, (_, i) => (i % 2 === 0 ? a : b).evaluate(bindingId, new Date(T0))),
    );

    const alerts = await alertsOf(bindingId);
    expect(alerts).toHaveLength(2);
    const [first, second] = alerts as [AlertRow, AlertRow];
    expect(first).toMatchObject({ count: 12, auto_banned: false });
    expect(first.first_at.getTime()).toBe(T0);
    expect(first.window_end.getTime()).toBe(T0 + WINDOW_S * 1000);
    expect(first.attempt_ips).toHaveLength(12);
    expect(second).toMatchObject({ count: 5 });
    expect(second.first_at.getTime()).toBe(T0 + 100_000);
    expect(second.window_end.getTime()).toBe(T0 + 100_000 + WINDOW_S * 1000);

    // Each alert was raised by exactly one evaluation; all of them end up knowing the latest one.
    const raised = evaluations.flatMap((e) => e.raised.map((r) => r.id));
    expect(raised.sort()).toEqual([first.id, second.id].sort());
    for (const e of evaluations) expect(e.last?.id).toBe(second.id);

    const rows = await interceptsOf(bindingId);
    const alertOf = new Map(rows.map((r) => [r.id, r.alerted ? r.alert_id : null]));
    for (const e of w1) expect(alertOf.get(e.id)).toBe(first.id);
    for (const e of w2) expect(alertOf.get(e.id)).toBe(second.id);
    expect(alertOf.get(lone.id)).toBeNull(); // below the threshold on its own
  });

  it('intercepts arriving through two writers while others evaluate: one alert per window, every intercept in one', async () => {
    for (let round = 0; round < 3; round++) {
      const bindingId = await newBinding();
      const [a, b] = await alertServices();
      const raised: string[] = [];
      const dispatch = {
        dispatch: (ids: string[]) => {
          raised.push(...ids);
          return Promise.resolve();
        },
      };
      const writers = [
        new InterceptWriter(new InterceptRepository(dsA), a, dispatch, logger),
        new InterceptWriter(new InterceptRepository(dsB), b, dispatch, logger),
      ];
      // 50 requests 1.9 s apart: the first window closes after 60 s, the
      // rest (≥ 15 requests after it, whichever of the first four opens it)
      // form the second. They arrive in two waves, each split four ways
      // between the writers, beside ten more evaluations per wave.
      const events = Array.from({ length: 50 }, (_, i) => intercept(bindingId, T0 + i * 1900, i));
      const waves = [events.slice(0, 32), events.slice(32)];
      for (const wave of waves) {
        const parts = [0, 1, 2, 3].map((p) => wave.filter((_, i) => i % 4 === p));
        const since = wave[0]!.at;
        const extra = await Promise.all([
          ...parts.map((part, p) => writers[p % 2]!.write(part).then(() => null)),
          ...Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? a : b).evaluate(bindingId, since)),
        ]);
        for (const e of extra) if (e !== null) raised.push(...e.raised.map((r) => r.id));
      }

      const alerts = await alertsOf(bindingId);
      expect(alerts).toHaveLength(2);
      const [first, second] = alerts as [AlertRow, AlertRow];
      // Opened by whichever of the first four intercepts an evaluator saw first.
      expect([0, 1, 2, 3].map((i) => T0 + i * 1900)).toContain(first.first_at.getTime());
      expect(second.first_at.getTime()).toBeGreaterThanOrEqual(first.window_end.getTime());
      expect(raised.sort()).toEqual([first.id, second.id].sort());
      const rows = await interceptsOf(bindingId);
      expect(rows).toHaveLength(50);
      for (const r of rows) {
        expect(r.alerted).toBe(true);
        expect([first.id, second.id]).toContain(r.alert_id);
      }
    }
  });

  it('AUTO_BAN: concurrent evaluations ban the key once, with the one alert', async () => {
    const bindingId = await newBinding();
    await new InterceptRepository(dsA).insertBatch(
      Array.from({ length: 6 }, (_, i) => intercept(bindingId, T0 + i * 1000, i)),
    );
    const [a, b] = await alertServices({ auto_ban: true });
    const evaluations = await Promise.all(
      Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? a : b).evaluate(bindingId, new Date(T0))),
    );
    const raised = evaluations.flatMap((e) => e.raised);
    expect(raised).toHaveLength(1);
    expect(raised[0]!.autoBanned).toBe(true);
    const alerts = await alertsOf(bindingId);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ id: raised[0]!.id, count: 6, auto_banned: true });
    const bindings: { status: string }[] = await dsA.query('SELECT status FROM bindings WHERE id = $1', [
      bindingId,
    ]);
    expect(bindings[0]!.status).toBe('banned');
  });
});
