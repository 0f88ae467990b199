import { describe, expect, it } from 'vitest';
import {
  checkTarget,
  isPlainPath,
  isReservedPath,
  isReservedTarget,
  originForm,
  REFUSED_PATH,
  resolvePath,
  rewriteRequestTarget,
} from './request-target';

describe('resolvePath', () => {
  it.each([
    ['/v1/models', '/v1/models'],
    ['/admin%2Fapi/login', '/admin/api/login'],
    ['//admin/api', '/admin/api'],
    ['/./admin/x', '/admin/x'],
    ['/v1/../admin/x', '/admin/x'],
    ['/v1/%2e%2e/admin', '/admin'],
    ['/admin;x/api', '/admin/api'],
    ['/%6detrics', '/metrics'],
    ['/%61dmin/', '/admin/'],
    ['/a\\admin', '/a/admin'],
    ['/../../x', '/x'],
    ['/v1/chat%20x', '/v1/chat%20x'],
    ['/', '/'],
  ])('%s → %s', (path, resolved) => {
    expect(resolvePath(path)).toBe(resolved);
  });
});

describe('isReservedPath / isReservedTarget', () => {
  it.each([
    ['/health', true],
    ['/health/', true],
    ['/healthz', false],
    ['/ready', true],
    ['/metrics', true],
    ['/metrics?x=1', true],
    ['/admin', true],
    ['/admin/api/x', true],
    ['/administrator', false],
    ['/v1/admin', false],
    ['/ADMIN/api', false],
  ])('%s: %s', (url, reserved) => {
    expect(isReservedTarget(url)).toBe(reserved);
    expect(isReservedPath(url.split('?')[0]!)).toBe(reserved);
  });
});

describe('originForm', () => {
  it.each([
    ['/v1/models?x=1', '/v1/models?x=1'],
    ['http://relay.example/admin/api?x', '/admin/api?x'],
    ['HTTPS://relay.example', '/'],
    ['http://relay.example?key=1', '/?key=1'],
    ['*', '*'],
    ['mailto:x', null],
  ])('%s → %s', (url, origin) => {
    expect(originForm(url)).toBe(origin);
  });
});

describe('checkTarget', () => {
  it('passes plain paths untouched without resolving them', () => {
    expect(isPlainPath('/v1/chat/completions?a=//b/./c%2F')).toBe(true);
    expect(checkTarget('/v1/chat/completions')).toEqual({ ok: true, url: '/v1/chat/completions' });
    // Spelled exactly, a reserved path is KeyPin's own route.
    expect(checkTarget('/admin/api/login')).toEqual({ ok: true, url: '/admin/api/login' });
  });

  it.each([
    '/admin%2Fapi/bindings',
    '//admin/api',
    '/./admin/',
    '/v1/../admin/api',
    '/admin;x',
    '/%6detrics',
    '/health/.',
  ])('refuses %s, which only resolves to a reserved path', (url) => {
    expect(checkTarget(url)).toEqual({ ok: false, reason: 'reserved' });
    expect(rewriteRequestTarget({ url })).toBe(REFUSED_PATH);
  });

  it('forwards an absolute-form target in origin form, and refuses one naming a reserved path oddly', () => {
    expect(checkTarget('http://x/v1/models?key=k')).toEqual({ ok: true, url: '/v1/models?key=k' });
    expect(checkTarget('http://x//admin/api')).toEqual({ ok: false, reason: 'reserved' });
    expect(rewriteRequestTarget({ url: 'http://x/v1/a' })).toBe('/v1/a');
  });

  it('keeps a non-reserved path that needs resolving as sent', () => {
    expect(checkTarget('/v1/%2E/models')).toEqual({ ok: true, url: '/v1/%2E/models' });
  });
});
