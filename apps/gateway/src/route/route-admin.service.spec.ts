import type { Logger } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import type { Caller } from '../admin/common/roles';
import { KeypinError } from '../infra/http/all-exceptions.filter';
import type { SealedSecret } from '../settings/secret-box';
import { type RouteAdminDeps, RouteAdminService, toRoute } from './route-admin.service';
import type { StoredRoute } from './route.types';
import { prefixTaken, type RouteWrite } from './routes.repository';

const caller: Caller = { userId: 1, username: 'alice', role: 'admin', ip: '127.0.0.1' };
const SECRET = 'sk-upstream-secret-value';
const T0 = new Date('2026-01-01T00:00:00.000Z');

/** A stand-in for SecretBox: recognisably sealed, and never the clear text. */
const seal = (plain: string): SealedSecret => ({
  v: 1,
  iv: 'iv',
  tag: 'tag',
  data: Buffer.from(plain).toString('base64'),
});

const stored = (over: Partial<StoredRoute> = {}): StoredRoute => ({
  id: 3,
  prefix: '/openai/',
  upstream: 'https://api.openai.com',
  strip_prefix: true,
  relay: 'openai',
  timeout_seconds: 600,
  upstream_headers: { authorization: seal('Bearer old'), 'x-org': seal('org') },
  require_header: { name: 'x-proxy-token', value: seal('old-token') },
  created_at: T0,
  updated_at: T0,
  ...over,
});

function setup(opts: { current?: StoredRoute | null; count?: number; env?: Record<string, string> } = {}) {
  const events: string[] = [];
  const tx = { query: vi.fn() };
  const current = opts.current === undefined ? stored() : opts.current;
  const written = (id: number, w: RouteWrite): StoredRoute => ({ id, ...w, created_at: T0, updated_at: T0 });
  const repo = {
    inWriteLock: vi.fn(async <T>(work: (m: never) => Promise<T>): Promise<T> => {
      events.push('begin');
      try {
        const out = await work(tx as never);
        events.push('commit');
        return out;
      } catch (err) {
        events.push('rollback');
        throw err;
      }
    }),
    page: vi.fn(() => Promise.resolve({ items: current ? [current] : [], total: current ? 1 : 0 })),
    findById: vi.fn(() => Promise.resolve(current)),
    count: vi.fn(() => Promise.resolve(opts.count ?? 0)),
    insert: vi.fn((_tx: unknown, w: RouteWrite) => {
      events.push('insert');
      return Promise.resolve(written(9, w));
    }),
    update: vi.fn((_tx: unknown, id: number, w: RouteWrite) => {
      events.push('update');
      return Promise.resolve(current ? written(id, w) : null);
    }),
    delete: vi.fn(() => {
      events.push('delete');
      return Promise.resolve(current);
    }),
  };
  const audit = {
    record: vi.fn((..._args: unknown[]) => {
      events.push('audit');
      return Promise.resolve();
    }),
  };
  const publish = vi.fn(() => {
    events.push('publish');
    return Promise.resolve();
  });
  const logger = { warn: vi.fn() } as unknown as Logger;
  const sut = new RouteAdminService({
    // The generic transaction runner loses its type parameter in a mock.
    repo: repo as unknown as RouteAdminDeps['repo'],
    audit,
    seal,
    env: opts.env ?? { OPENAI_API_KEY: SECRET, EMPTY: '' },
    notifyLocal: () => events.push('local'),
    publish,
    logger,
  });
  return { sut, repo, audit, publish, events, logger, tx };
}

async function failure(p: Promise<unknown>): Promise<KeypinError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(KeypinError);
    return err as KeypinError;
  }
  throw new Error('expected a KeypinError');
}

describe('toRoute', () => {
  it('shows header names only, sorted, and the proxy token’s name', () => {
    expect(toRoute(stored())).toEqual({
      id: 3,
      prefix: '/openai/',
      upstream: 'https://api.openai.com',
      strip_prefix: true,
      relay: 'openai',
      timeout_seconds: 600,
      upstream_header_names: ['authorization', 'x-org'],
      require_header_name: 'x-proxy-token',
      created_at: '2026-01-01T00:00:00.000Z',
      updated_at: '2026-01-01T00:00:00.000Z',
    });
    expect(toRoute(stored({ upstream_headers: {}, require_header: null }))).toMatchObject({
      upstream_header_names: [],
      require_header_name: null,
    });
  });
});

describe('RouteAdminService.create', () => {
  const body = {
    prefix: '/openai/',
    upstream: 'https://api.openai.com/',
    upstream_headers: { Authorization: `Bearer ${SECRET}`, 'x-env': 'Bearer ${env:OPENAI_API_KEY}' },
    require_header: { name: 'X-Proxy-Token', value: 'tok-123' },
  };

  it('seals every value, audits the shown shape, commits, then tells this instance before the others', async () => {
    const { sut, repo, audit, events } = setup();
    const route = await sut.create(caller, body);
    expect(route).toMatchObject({
      id: 9,
      upstream: 'https://api.openai.com',
      upstream_header_names: ['authorization', 'x-env'],
      require_header_name: 'x-proxy-token',
    });
    const write = repo.insert.mock.calls[0]![1];
    expect(write.upstream_headers['authorization']).toEqual(seal(`Bearer ${SECRET}`));
    expect(write.upstream_headers['x-env']).toEqual(seal('Bearer ${env:OPENAI_API_KEY}'));
    expect(write.require_header).toEqual({ name: 'x-proxy-token', value: seal('tok-123') });
    expect(JSON.stringify(write)).not.toContain(SECRET);
    expect(audit.record).toHaveBeenCalledWith(
      caller,
      'route.create',
      'route:9',
      null,
      route,
      expect.anything(),
    );
    expect(JSON.stringify(audit.record.mock.calls)).not.toContain(SECRET);
    expect(JSON.stringify(audit.record.mock.calls)).not.toContain('tok-123');
    expect(events).toEqual(['begin', 'insert', 'audit', 'commit', 'local', 'publish']);
  });

  it.each([
    [{ ...body, prefix: '/admin/x/' }, 'prefix'],
    [{ ...body, prefix: '/openai' }, 'prefix'],
    [{ ...body, upstream: 'ftp://x' }, 'upstream'],
    [{ ...body, upstream_headers: { 'bad name': 'x' } }, 'upstream_headers.bad name'],
    [{ ...body, nope: 1 }, 'nope'],
    [[], 'body'],
    [null, 'body'],
  ])('refuses %j with 422 naming %s, writing nothing', async (input, field) => {
    const { sut, repo, events } = setup();
    const err = await failure(sut.create(caller, input));
    expect(err.code).toBe('validation_failed');
    expect(err.extra).toEqual({ field });
    expect(repo.inWriteLock).not.toHaveBeenCalled();
    expect(events).toEqual([]);
  });

  it.each([
    [
      { upstream_headers: { Authorization: 'Bearer ${env:MISSING_KEY}' } },
      'upstream_headers.authorization',
      'MISSING_KEY',
    ],
    [{ upstream_headers: { a: '${env:OPENAI_API_KEY}:${env:EMPTY}' } }, 'upstream_headers.a', 'EMPTY'],
    [{ require_header: { name: 'x-t', value: '${env:PROXY_TOKEN}' } }, 'require_header.value', 'PROXY_TOKEN'],
  ])(
    'refuses a reference to an unset variable (%j) naming the field and the variable',
    async (over, field, variable) => {
      const { sut, events } = setup();
      const err = await failure(sut.create(caller, { prefix: '/p/', upstream: 'http://u', ...over }));
      expect(err.code).toBe('validation_failed');
      expect(err.extra).toEqual({ field });
      expect(err.message).toContain(field);
      expect(err.message).toContain(variable);
      expect(events).toEqual([]);
    },
  );

  it('refuses a route past the limit with 422, inside the lock', async () => {
    const { sut, repo, events } = setup({ count: 100 });
    const err = await failure(sut.create(caller, { prefix: '/p/', upstream: 'http://u' }));
    expect(err.code).toBe('validation_failed');
    expect(err.message).toContain('at most 100 routes');
    expect(repo.insert).not.toHaveBeenCalled();
    expect(events).toEqual(['begin', 'rollback']);
  });

  it('passes the repository’s 409 on and announces nothing', async () => {
    const { sut, repo, events } = setup();
    repo.insert.mockRejectedValueOnce(prefixTaken('/p/'));
    const err = await failure(sut.create(caller, { prefix: '/p/', upstream: 'http://u' }));
    expect(err.code).toBe('conflict');
    expect(err.message).toContain('A route with prefix "/p/" exists');
    expect(events).toEqual(['begin', 'rollback']);
  });

  it('answers the route although Redis cannot be told (PostgreSQL NOTIFY is the second path)', async () => {
    const { sut, publish, logger } = setup();
    publish.mockRejectedValueOnce(new Error('redis down'));
    await expect(sut.create(caller, { prefix: '/p/', upstream: 'http://u' })).resolves.toMatchObject({
      id: 9,
    });
    expect(logger.warn).toHaveBeenCalled();
  });
});

describe('RouteAdminService.update', () => {
  it('keeps the fields left out, sealed values included', async () => {
    const { sut, repo, audit, events } = setup();
    const before = stored();
    const route = await sut.update(caller, 3, { upstream: 'http://other:8080/', relay: null });
    const write = repo.update.mock.calls[0]![2];
    expect(write).toEqual({
      prefix: '/openai/',
      upstream: 'http://other:8080',
      strip_prefix: true,
      relay: null,
      timeout_seconds: 600,
      upstream_headers: before.upstream_headers,
      require_header: before.require_header,
    });
    expect(route).toMatchObject({
      upstream: 'http://other:8080',
      relay: null,
      upstream_header_names: ['authorization', 'x-org'],
    });
    expect(audit.record).toHaveBeenCalledWith(
      caller,
      'route.update',
      'route:3',
      toRoute(before),
      route,
      expect.anything(),
    );
    expect(events).toEqual(['begin', 'update', 'audit', 'commit', 'local', 'publish']);
  });

  it('replaces the whole header set when one is given, and removes the token with null', async () => {
    const { sut, repo, audit } = setup();
    const route = await sut.update(caller, 3, {
      upstream_headers: { 'X-New': SECRET },
      require_header: null,
    });
    const write = repo.update.mock.calls[0]![2];
    expect(write.upstream_headers).toEqual({ 'x-new': seal(SECRET) });
    expect(write.require_header).toBeNull();
    expect(route).toMatchObject({ upstream_header_names: ['x-new'], require_header_name: null });
    const after = audit.record.mock.calls[0]![4];
    expect(after).toMatchObject({ upstream_header_values: 'changed', upstream_header_names: ['x-new'] });
    expect(JSON.stringify(audit.record.mock.calls)).not.toContain(SECRET);
  });

  it('says in the audit row that the proxy token’s value was written, never what it is', async () => {
    const { sut, audit } = setup();
    await sut.update(caller, 3, { require_header: { name: 'x-proxy-token', value: 'new-token' } });
    const after = audit.record.mock.calls[0]![4];
    expect(after).toMatchObject({ require_header_value: 'changed' });
    expect(JSON.stringify(audit.record.mock.calls)).not.toContain('new-token');
  });

  it('writes, audits and announces nothing when nothing would change', async () => {
    const { sut, repo, audit, events } = setup();
    const route = await sut.update(caller, 3, {
      prefix: '/openai/',
      strip_prefix: true,
      timeout_seconds: 600,
    });
    expect(route).toEqual(toRoute(stored()));
    expect(repo.update).not.toHaveBeenCalled();
    expect(audit.record).not.toHaveBeenCalled();
    expect(events).toEqual(['begin', 'commit']);
    const plain = setup({ current: stored({ require_header: null }) });
    await plain.sut.update(caller, 3, { require_header: null });
    expect(plain.repo.update).not.toHaveBeenCalled();
  });

  it('refuses a proxy token header that the route also sets upstream, either way round', async () => {
    const { sut } = setup();
    const a = await failure(sut.update(caller, 3, { require_header: { name: 'X-Org', value: 'v' } }));
    expect(a.extra).toEqual({ field: 'require_header.name' });
    const b = await failure(sut.update(caller, 3, { upstream_headers: { 'x-proxy-token': 'v' } }));
    expect(b.extra).toEqual({ field: 'upstream_headers.x-proxy-token' });
  });

  it('refuses an empty body, and unset variables, before taking the lock', async () => {
    const { sut, repo } = setup();
    expect((await failure(sut.update(caller, 3, {}))).extra).toEqual({ field: 'body' });
    const err = await failure(sut.update(caller, 3, { upstream_headers: { a: '${env:NOPE}' } }));
    expect(err.extra).toEqual({ field: 'upstream_headers.a' });
    expect(repo.inWriteLock).not.toHaveBeenCalled();
  });

  it('answers 404 for a route that does not exist', async () => {
    const { sut, events } = setup({ current: null });
    expect((await failure(sut.update(caller, 77, { strip_prefix: false }))).code).toBe('not_found');
    expect(events).toEqual(['begin', 'rollback']);
  });
});

describe('RouteAdminService.remove and reads', () => {
  it('deletes with its audit row, then announces, answering the route as it was', async () => {
    const { sut, audit, events } = setup();
    const route = await sut.remove(caller, 3);
    expect(route).toEqual(toRoute(stored()));
    expect(audit.record).toHaveBeenCalledWith(
      caller,
      'route.delete',
      'route:3',
      route,
      null,
      expect.anything(),
    );
    expect(events).toEqual(['begin', 'delete', 'audit', 'commit', 'local', 'publish']);
  });

  it('answers 404 for unknown ids', async () => {
    const { sut, events } = setup({ current: null });
    expect((await failure(sut.remove(caller, 5))).code).toBe('not_found');
    expect((await failure(sut.get(5))).code).toBe('not_found');
    expect(events).toEqual(['begin', 'delete', 'rollback']);
  });

  it('lists routes in the shown shape', async () => {
    const { sut, repo } = setup();
    expect(await sut.list({ page: 2, pageSize: 10, offset: 10 })).toEqual({
      items: [toRoute(stored())],
      total: 1,
    });
    expect(repo.page).toHaveBeenCalledWith(10, 10);
  });
});
