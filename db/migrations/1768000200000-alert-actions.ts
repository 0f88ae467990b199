import type { MigrationInterface, QueryRunner } from 'typeorm';

/** A prefix from the environment as the gateway's config reads it; anything else → the default. */
function envPrefix(name: string, def: number, max: number): number {
  const raw = process.env[name]?.trim();
  if (raw === undefined || !/^\d{1,3}$/.test(raw)) return def;
  const n = Number(raw);
  return n <= max ? n : def;
}

/**
 * From alert to action (docs/contract.md 11, docs/alerts.md):
 * - `alerts.status`: `open` until an admin allows one of the alert's
 *   networks (`allowed`), bans the key (`banned`) or dismisses it
 *   (`dismissed`); every existing alert starts `open`. `acted_by` and
 *   `acted_at` say who moved it from `open` and when (`acted_by` null with a
 *   status other than open: AUTO_BAN did it), `allowed_network` which
 *   network was allowed.
 * - `alerts.attempt_networks`: the networks the alert's attempts came from,
 *   each attempted IP's network under the binding prefixes
 *   (`bind_ipv4_prefix`, `bind_ipv6_prefix`) in force when the alert was
 *   raised, in the order the IPs were first seen, without duplicates. Stored
 *   rather than computed on read, so a later change of the prefixes does not
 *   change what an alert offers to allow. Existing alerts get them from the
 *   prefixes in force now: the stored settings override, else
 *   BIND_IPV4_PREFIX / BIND_IPV6_PREFIX of the environment running the
 *   migration, else 32 / 64.
 * Adding columns with constant defaults rewrites nothing; the backfill
 * touches each alert once (one row per key and window: a small table).
 */
export class AlertActions1768000200000 implements MigrationInterface {
  name = 'AlertActions1768000200000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TYPE alert_status AS ENUM ('open', 'allowed', 'banned', 'dismissed')`);
    await q.query(`
      ALTER TABLE alerts
        ADD COLUMN status           alert_status NOT NULL DEFAULT 'open',
        ADD COLUMN attempt_networks cidr[] NOT NULL DEFAULT '{}',
        ADD COLUMN acted_by         text,
        ADD COLUMN acted_at         timestamptz,
        ADD COLUMN allowed_network  cidr`);
    await q.query(
      `WITH stored AS (
         SELECT key, (value #>> '{}')::int AS prefix FROM settings
          WHERE key IN ('bind_ipv4_prefix', 'bind_ipv6_prefix') AND jsonb_typeof(value) = 'number'),
       p AS (
         SELECT coalesce((SELECT prefix FROM stored WHERE key = 'bind_ipv4_prefix'), $1::int) AS v4,
                coalesce((SELECT prefix FROM stored WHERE key = 'bind_ipv6_prefix'), $2::int) AS v6)
       UPDATE alerts a SET attempt_networks = array(
         SELECT n FROM (
           SELECT network(set_masklen(ip, CASE WHEN family(ip) = 4 THEN p.v4 ELSE p.v6 END))::cidr AS n,
                  min(ord) AS first
             FROM unnest(a.attempt_ips) WITH ORDINALITY AS u(ip, ord)
            GROUP BY 1) nets
          ORDER BY first)
         FROM p`,
      [envPrefix('BIND_IPV4_PREFIX', 32, 32), envPrefix('BIND_IPV6_PREFIX', 64, 128)],
    );
    await q.query(`CREATE INDEX alerts_open_idx ON alerts (occurred_at DESC) WHERE status = 'open'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX alerts_open_idx`);
    await q.query(`
      ALTER TABLE alerts
        DROP COLUMN status,
        DROP COLUMN attempt_networks,
        DROP COLUMN acted_by,
        DROP COLUMN acted_at,
        DROP COLUMN allowed_network`);
    await q.query(`DROP TYPE alert_status`);
  }
}
