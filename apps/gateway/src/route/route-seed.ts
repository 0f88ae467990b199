import type { RouteSpec } from '@keypin/shared';
import type { Caller } from '../admin/common/roles';
import type { SealedSecret } from '../settings/secret-box';
import { type AuditSink, sealRoute, toRoute } from './route-admin.service';
import type { RoutesRepository } from './routes.repository';

/**
 * The audit actor of routes written from the `ROUTES` variable. Not a
 * possible username (usernames hold no ':'), so it cannot be mistaken for
 * a person.
 */
export const ROUTES_SEED_ACTOR: Caller = { userId: 0, username: 'env:ROUTES', role: 'admin', ip: null };

export type SeedOutcome =
  /** The table was empty: every route of ROUTES was written (and audited). */
  | { seeded: true; prefixes: string[] }
  /** The table held routes: nothing was written, ROUTES does not apply. */
  | { seeded: false; stored: number };

/**
 * `ROUTES` is the initial set of routes (docs/contract.md 10): written,
 * sealed and audited in one transaction when the table is empty, ignored
 * once routes are stored (the admin API owns them from then on). Under the
 * routes write lock, so instances starting together seed once.
 */
export function seedRoutes(
  d: {
    repo: Pick<RoutesRepository, 'inWriteLock' | 'count' | 'insert'>;
    audit: AuditSink;
    seal: (plain: string) => SealedSecret;
  },
  specs: readonly RouteSpec[],
): Promise<SeedOutcome> {
  return d.repo.inWriteLock(async (tx): Promise<SeedOutcome> => {
    const stored = await d.repo.count(tx);
    if (stored > 0) return { seeded: false, stored };
    for (const spec of specs) {
      const route = toRoute(await d.repo.insert(tx, sealRoute(spec, d.seal)));
      await d.audit.record(ROUTES_SEED_ACTOR, 'route.create', `route:${route.id}`, null, route, tx);
    }
    return { seeded: true, prefixes: specs.map((s) => s.prefix) };
  });
}
