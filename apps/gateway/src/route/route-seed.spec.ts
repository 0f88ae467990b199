import { validateRoute, type RouteSpec } from '@keypin/shared';
import { describe, expect, it, vi } from 'vitest';
import type { SealedSecret } from '../settings/secret-box';
import { ROUTES_SEED_ACTOR, seedRoutes } from './route-seed';
import type { RoutesRepository, RouteWrite } from './routes.repository';

const seal = (plain: string): SealedSecret => ({
  v: 1,
  iv: 'i',
  tag: 't',
  data: Buffer.from(plain).toString('hex'),
});

const spec = (input: object): RouteSpec => {
  const r = validateRoute(input);
  if (!r.ok) throw new Error(r.message);
  return r.value;
};

function setup(count: number) {
  let id = 0;
  const repo = {
    inWriteLock: vi.fn(<T>(work: (tx: never) => Promise<T>) => work({} as never)),
    count: vi.fn(() => Promise.resolve(count)),
    insert: vi.fn((_tx: unknown, w: RouteWrite) =>
      Promise.resolve({ id: ++id, ...w, created_at: new Date(0), updated_at: new Date(0) }),
    ),
  };
  const audit = { record: vi.fn((..._args: unknown[]) => Promise.resolve()) };
  return {
    repo,
    audit,
    sut: () => seedRoutes({ repo: repo as unknown as RoutesRepository, audit, seal }, routes),
  };
}

const routes = [
  spec({ prefix: '/a/', upstream: 'http://a', upstream_headers: { authorization: 'Bearer ${env:A_KEY}' } }),
  spec({ prefix: '/b/', upstream: 'http://b', require_header: { name: 'x-token', value: 'clear-token' } }),
];

describe('seedRoutes', () => {
  it('writes every route sealed into an empty table, each audited as env:ROUTES, in one locked transaction', async () => {
    const { sut, repo, audit } = setup(0);
    expect(await sut()).toEqual({ seeded: true, prefixes: ['/a/', '/b/'] });
    expect(repo.inWriteLock).toHaveBeenCalledTimes(1);
    expect(repo.insert).toHaveBeenCalledTimes(2);
    expect(JSON.stringify(repo.insert.mock.calls)).not.toContain('clear-token');
    expect(JSON.stringify(repo.insert.mock.calls)).not.toContain('A_KEY');
    expect(audit.record).toHaveBeenCalledTimes(2);
    expect(audit.record.mock.calls[1]).toEqual([
      ROUTES_SEED_ACTOR,
      'route.create',
      'route:2',
      null,
      expect.objectContaining({ prefix: '/b/', require_header_name: 'x-token' }),
      expect.anything(),
    ]);
    expect(JSON.stringify(audit.record.mock.calls)).not.toContain('clear-token');
    expect(ROUTES_SEED_ACTOR.username).toBe('env:ROUTES');
  });

  it('writes nothing once routes are stored', async () => {
    const { sut, repo, audit } = setup(4);
    expect(await sut()).toEqual({ seeded: false, stored: 4 });
    expect(repo.insert).not.toHaveBeenCalled();
    expect(audit.record).not.toHaveBeenCalled();
  });
});
