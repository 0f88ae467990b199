import { describe, expect, it } from 'vitest';
import { KeypinError } from '../infra/http/all-exceptions.filter';
import {
  formatInstant,
  type InterceptFilter,
  parseInterceptFilter,
  parseIsoInstant,
} from './intercept-filter';

const NONE: InterceptFilter = {
  bindingId: null,
  tokenLike: null,
  network: null,
  reason: null,
  from: null,
  to: null,
};

function failure(query: Record<string, unknown>): { field: unknown; message: string } {
  try {
    parseInterceptFilter(query);
  } catch (err) {
    if (err instanceof KeypinError) {
      expect(err.code).toBe('validation_failed');
      return { field: err.extra?.['field'], message: err.message };
    }
    throw err;
  }
  throw new Error(`accepted ${JSON.stringify(query)}`);
}

describe('parseInterceptFilter', () => {
  it('accepts an empty query and paging parameters', () => {
    expect(parseInterceptFilter({})).toEqual(NONE);
    expect(parseInterceptFilter({ page: '2', page_size: '50' })).toEqual(NONE);
  });

  it('treats empty values as absent', () => {
    expect(
      parseInterceptFilter({ binding_id: '', search: '  ', ip: '', reason: '', from: '', to: '' }),
    ).toEqual(NONE);
  });

  it.each<[string, Record<string, string>, Partial<InterceptFilter>]>([
    ['binding id', { binding_id: '42' }, { bindingId: 42 }],
    ['search', { search: 'AbCd' }, { tokenLike: '%AbCd%' }],
    ['search with ... for the mask', { search: 'ab...yz' }, { tokenLike: '%ab\u2026yz%' }],
    ['search wildcards are literal', { search: '50%_a\\' }, { tokenLike: '%50\\%\\_a\\\\%' }],
    ['IPv4 address', { ip: '198.51.100.9' }, { network: '198.51.100.9/32' }],
    ['IPv4-mapped address', { ip: '::ffff:198.51.100.9' }, { network: '198.51.100.9/32' }],
    ['IPv6 address', { ip: '2001:DB8:0::1' }, { network: '2001:db8::1/128' }],
    ['IPv4 network', { ip: '10.1.0.0/16' }, { network: '10.1.0.0/16' }],
    ['IPv6 network', { ip: '2001:db8::/32' }, { network: '2001:db8::/32' }],
    ['reason', { reason: 'key_banned' }, { reason: 'key_banned' }],
    ['from date-time', { from: '2025-01-31T10:00:00Z' }, { from: '2025-01-31T10:00:00.000000Z' }],
    ['from with offset', { from: '2025-01-31T10:00+02:00' }, { from: '2025-01-31T08:00:00.000000Z' }],
    ['from date alone', { from: '2025-01-31' }, { from: '2025-01-31T00:00:00.000000Z' }],
    [
      'to date-time (inclusive)',
      { to: '2025-01-31T10:00:00.123456Z' },
      { to: { at: '2025-01-31T10:00:00.123456Z', inclusive: true } },
    ],
    [
      'to date alone (whole day)',
      { to: '2025-01-31' },
      { to: { at: '2025-02-01T00:00:00.000000Z', inclusive: false } },
    ],
    [
      'same instant both ends',
      { from: '2025-01-31T10:00:00Z', to: '2025-01-31T12:00:00+02:00' },
      { from: '2025-01-31T10:00:00.000000Z', to: { at: '2025-01-31T10:00:00.000000Z', inclusive: true } },
    ],
    [
      'one whole day',
      { from: '2025-01-31', to: '2025-01-31' },
      { from: '2025-01-31T00:00:00.000000Z', to: { at: '2025-02-01T00:00:00.000000Z', inclusive: false } },
    ],
  ])('reads %s', (_name, query, expected) => {
    expect(parseInterceptFilter(query)).toEqual({ ...NONE, ...expected });
  });

  it.each<[string, Record<string, unknown>, string]>([
    ['binding id not a number', { binding_id: 'abc' }, 'binding_id'],
    ['binding id zero', { binding_id: '0' }, 'binding_id'],
    ['binding id negative', { binding_id: '-1' }, 'binding_id'],
    ['binding id too long', { binding_id: '1234567890123456' }, 'binding_id'],
    ['binding id twice', { binding_id: ['1', '2'] }, 'binding_id'],
    ['search too long', { search: 'x'.repeat(257) }, 'search'],
    ['ip garbage', { ip: 'nope' }, 'ip'],
    ['ip with leading zeros', { ip: '010.0.0.1' }, 'ip'],
    ['ip inet_aton form', { ip: '127.1' }, 'ip'],
    ['ip zone id', { ip: 'fe80::1%eth0' }, 'ip'],
    ['network with host bits', { ip: '10.0.0.1/24' }, 'ip'],
    ['network bad prefix', { ip: '10.0.0.0/33' }, 'ip'],
    ['reason unknown', { reason: 'nope' }, 'reason'],
    ['from garbage', { from: 'yesterday' }, 'from'],
    ['from month 13', { from: '2025-13-01' }, 'from'],
    ['from 30 February', { from: '2025-02-30' }, 'from'],
    ['from hour 24', { from: '2025-01-01T24:00:00Z' }, 'from'],
    ['from without zone', { from: '2025-01-01T10:00:00' }, 'from'],
    ['from epoch number', { from: '1735725600' }, 'from'],
    ['to garbage', { to: '2025-01-01 10:00' }, 'to'],
    ['to bad offset', { to: '2025-01-01T10:00:00+25:00' }, 'to'],
    ['from after to', { from: '2025-01-02T00:00:00Z', to: '2025-01-01T23:59:59Z' }, 'from'],
    ['from at the next midnight of a date-only to', { from: '2025-01-02', to: '2025-01-01' }, 'from'],
    ['unknown parameter', { bindingid: '1' }, 'bindingid'],
  ])('refuses %s', (_name, query, field) => {
    expect(failure(query).field).toBe(field);
  });

  it('names the field in the message', () => {
    expect(failure({ reason: 'nope' }).message).toMatch(/^Invalid reason: /);
  });
});

describe('parseIsoInstant', () => {
  it.each<[string, string]>([
    ['2024-02-29', '2024-02-29T00:00:00.000000Z'],
    ['2025-06-01T00:00Z', '2025-06-01T00:00:00.000000Z'],
    ['2025-06-01t12:34:56z', '2025-06-01T12:34:56.000000Z'],
    ['2025-06-01T12:34:56.5Z', '2025-06-01T12:34:56.500000Z'],
    ['2025-06-01T12:34:56,25Z', '2025-06-01T12:34:56.250000Z'],
    ['2025-06-01T12:34:56.123456789Z', '2025-06-01T12:34:56.123456Z'],
    ['2025-06-01T00:30:00+01:00', '2025-05-31T23:30:00.000000Z'],
    ['2025-06-01T23:30:00-0130', '2025-06-02T01:00:00.000000Z'],
    ['2025-06-01T12:00:00+05', '2025-06-01T07:00:00.000000Z'],
    ['1969-12-31T23:59:59.999999Z', '1969-12-31T23:59:59.999999Z'],
    ['0001-01-01', '0001-01-01T00:00:00.000000Z'],
  ])('reads %s', (input, canonical) => {
    const sut = parseIsoInstant(input);
    if (typeof sut === 'string') throw new Error(sut);
    expect(formatInstant(sut.micros)).toBe(canonical);
  });

  it.each([
    '',
    '2025-1-01',
    '2025-01-01T',
    '2023-02-29',
    '0000-01-01',
    '2025-01-01T10:60Z',
    '2025-01-01T10:00:60Z',
  ])('refuses %j', (input) => {
    expect(typeof parseIsoInstant(input)).toBe('string');
  });
});
