import { type Route, ROUTE_LIMITS, type RouteSpec, validateRoute } from '@keypin/shared';
import type { Logger } from 'pino';
import type { Paging } from '../admin/common/paging';
import type { Caller } from '../admin/common/roles';
import { invalid } from '../admin/common/validation';
import type { AuditRepository } from '../audit/audit.repository';
import { KeypinError } from '../infra/http/all-exceptions.filter';
import type { SealedSecret } from '../settings/secret-box';
import { missingEnvReference, missingReferenceMessage } from './route-env';
import type { StoredRoute } from './route.types';
import type { RoutesRepository, RouteWrite } from './routes.repository';

/** Where the service writes its audit rows. */
export type AuditSink = Pick<AuditRepository, 'record'>;

export interface RouteAdminDeps {
  repo: Pick<
    RoutesRepository,
    'inWriteLock' | 'page' | 'findById' | 'count' | 'insert' | 'update' | 'delete'
  >;
  audit: AuditSink;
  /** Seals a header value for storage (the settings' SecretBox). */
  seal: (plain: string) => SealedSecret;
  /** This process's environment: every `${env:NAME}` a new value names must be set in it. */
  env: Readonly<Record<string, string | undefined>>;
  /** Tells this instance's routing table at once. Must not throw. */
  notifyLocal: () => void;
  /** Tells the other instances (Redis pub/sub). May fail: the PostgreSQL trigger is the second path. */
  publish: () => Promise<void>;
  logger: Logger;
}

/** A route as the admin API shows it: header names, never their values. */
export function toRoute(s: StoredRoute): Route {
  return {
    id: s.id,
    prefix: s.prefix,
    upstream: s.upstream,
    strip_prefix: s.strip_prefix,
    relay: s.relay,
    timeout_seconds: s.timeout_seconds,
    upstream_header_names: Object.keys(s.upstream_headers).sort(),
    require_header_name: s.require_header?.name ?? null,
    created_at: s.created_at.toISOString(),
    updated_at: s.updated_at.toISOString(),
  };
}

/** A validated route as it is stored: every header value sealed. */
export function sealRoute(spec: RouteSpec, seal: (plain: string) => SealedSecret): RouteWrite {
  return {
    prefix: spec.prefix,
    upstream: spec.upstream,
    strip_prefix: spec.strip_prefix,
    relay: spec.relay,
    timeout_seconds: spec.timeout_seconds,
    upstream_headers: sealHeaders(spec.upstream_headers, seal),
    require_header:
      spec.require_header === null
        ? null
        : { name: spec.require_header.name, value: seal(spec.require_header.value) },
  };
}

function sealHeaders(
  headers: Record<string, string>,
  seal: (plain: string) => SealedSecret,
): Record<string, SealedSecret> {
  const out: Record<string, SealedSecret> = {};
  for (const [name, value] of Object.entries(headers)) out[name] = seal(value);
  return out;
}

/** A `POST /routes` body, checked by the shared rules; 422 naming the field. */
export function parseNewRoute(body: unknown): RouteSpec {
  if (!isObject(body)) throw invalid('body', 'must be a JSON object');
  const r = validateRoute(body, '');
  if (!r.ok) throw invalid(r.field, r.message);
  return r.value;
}

/** A `PUT /routes/:id` body: only the fields given; 422 naming the field. */
export function parseRoutePatch(body: unknown): Partial<RouteSpec> {
  if (!isObject(body)) throw invalid('body', 'must be a JSON object');
  const r = validateRoute(body, '', true);
  if (!r.ok) throw invalid(r.field, r.message);
  if (Object.keys(r.value).length === 0) throw invalid('body', 'names no route field to change');
  return r.value;
}

/**
 * The stored route with a patch applied: fields not in the patch keep
 * their value, `upstream_headers` given replaces the whole set (sealed
 * here), `require_header: null` removes it. 422 when the proxy token's
 * header would also be one set upstream.
 */
export function applyPatch(
  stored: StoredRoute,
  patch: Partial<RouteSpec>,
  seal: (plain: string) => SealedSecret,
): RouteWrite {
  const headers =
    patch.upstream_headers === undefined
      ? stored.upstream_headers
      : sealHeaders(patch.upstream_headers, seal);
  const require =
    patch.require_header === undefined
      ? stored.require_header
      : patch.require_header === null
        ? null
        : { name: patch.require_header.name, value: seal(patch.require_header.value) };
  if (require !== null && require.name in headers) {
    if (patch.require_header !== undefined)
      throw invalid('require_header.name', 'is also set in upstream_headers');
    throw invalid(`upstream_headers.${require.name}`, "is the route's require_header name");
  }
  return {
    prefix: patch.prefix ?? stored.prefix,
    upstream: patch.upstream ?? stored.upstream,
    strip_prefix: patch.strip_prefix ?? stored.strip_prefix,
    relay: patch.relay === undefined ? stored.relay : patch.relay,
    timeout_seconds: patch.timeout_seconds === undefined ? stored.timeout_seconds : patch.timeout_seconds,
    upstream_headers: headers,
    require_header: require,
  };
}

/** True when a patch would leave the stored route as it is (no header value given, every other field equal). */
export function changesNothing(stored: StoredRoute, patch: Partial<RouteSpec>): boolean {
  if (patch.upstream_headers !== undefined) return false;
  if (
    patch.require_header !== undefined &&
    (patch.require_header !== null || stored.require_header !== null)
  ) {
    return false;
  }
  return (
    (patch.prefix ?? stored.prefix) === stored.prefix &&
    (patch.upstream ?? stored.upstream) === stored.upstream &&
    (patch.strip_prefix ?? stored.strip_prefix) === stored.strip_prefix &&
    (patch.relay === undefined || patch.relay === stored.relay) &&
    (patch.timeout_seconds === undefined || patch.timeout_seconds === stored.timeout_seconds)
  );
}

/** 422 when a value names an environment variable this process does not have. */
export function checkEnvReferences(
  spec: Partial<RouteSpec>,
  env: Readonly<Record<string, string | undefined>>,
): void {
  const missing = missingEnvReference(spec, env);
  if (missing) throw invalid(missing.field, missingReferenceMessage(missing.variable));
}

/**
 * The audited "after" of a route: the API view, plus which write-only
 * values a change wrote (never the values themselves).
 */
function audited(route: Route, patch: Partial<RouteSpec>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...route };
  if (patch.upstream_headers !== undefined) out['upstream_header_values'] = 'changed';
  if (patch.require_header) out['require_header_value'] = 'changed';
  return out;
}

const target = (id: number) => `route:${id}`;
const notFound = (id: number) => new KeypinError('not_found', `No route ${id}.`);

/**
 * The admin side of routes (docs/contract.md 10): list, read, create,
 * change and delete. Header values are write-only: sealed before they are
 * stored, never answered, logged or audited. Every change commits with its
 * audit row under the routes write lock, then this instance's routing
 * table is told at once and the others through Redis (the table's trigger
 * NOTIFYs them through PostgreSQL too).
 */
export class RouteAdminService {
  constructor(private readonly d: RouteAdminDeps) {}

  async list(p: Paging): Promise<{ items: Route[]; total: number }> {
    const { items, total } = await this.d.repo.page(p.pageSize, p.offset);
    return { items: items.map(toRoute), total };
  }

  async get(id: number): Promise<Route> {
    const s = await this.d.repo.findById(id);
    if (!s) throw notFound(id);
    return toRoute(s);
  }

  async create(caller: Caller, body: unknown): Promise<Route> {
    const spec = parseNewRoute(body);
    checkEnvReferences(spec, this.d.env);
    const write = sealRoute(spec, this.d.seal);
    const created = await this.d.repo.inWriteLock(async (tx) => {
      const n = await this.d.repo.count(tx);
      if (n >= ROUTE_LIMITS.routes) {
        throw invalid('body', `at most ${ROUTE_LIMITS.routes} routes can exist; delete one first`);
      }
      const route = toRoute(await this.d.repo.insert(tx, write));
      await this.d.audit.record(caller, 'route.create', target(route.id), null, route, tx);
      return route;
    });
    await this.announce();
    return created;
  }

  async update(caller: Caller, id: number, body: unknown): Promise<Route> {
    const patch = parseRoutePatch(body);
    checkEnvReferences(patch, this.d.env);
    const out = await this.d.repo.inWriteLock(async (tx) => {
      const before = await this.d.repo.findById(id, tx, true);
      if (!before) throw notFound(id);
      if (changesNothing(before, patch)) return { route: toRoute(before), changed: false };
      const after = await this.d.repo.update(tx, id, applyPatch(before, patch, this.d.seal));
      if (!after) throw notFound(id);
      const route = toRoute(after);
      await this.d.audit.record(
        caller,
        'route.update',
        target(id),
        toRoute(before),
        audited(route, patch),
        tx,
      );
      return { route, changed: true };
    });
    if (out.changed) await this.announce();
    return out.route;
  }

  async remove(caller: Caller, id: number): Promise<Route> {
    const removed = await this.d.repo.inWriteLock(async (tx) => {
      const gone = await this.d.repo.delete(tx, id);
      if (!gone) throw notFound(id);
      const route = toRoute(gone);
      await this.d.audit.record(caller, 'route.delete', target(id), route, null, tx);
      return route;
    });
    await this.announce();
    return removed;
  }

  /** After a commit: this instance at once, then the others. Never throws. */
  private async announce(): Promise<void> {
    this.d.notifyLocal();
    await this.d
      .publish()
      .catch((err: Error) =>
        this.d.logger.warn(
          { err: err.message },
          'routes change not published on Redis; PostgreSQL NOTIFY remains',
        ),
      );
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
