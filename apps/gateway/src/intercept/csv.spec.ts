import type { Intercept } from '@keypin/shared';
import { parse } from 'csv-parse/sync';
import { describe, expect, it } from 'vitest';
import { csvField, csvRecord, INTERCEPT_CSV_HEADER, interceptCsvRecord } from './csv';

describe('csvField', () => {
  it.each<[string, string | number | boolean | null | undefined, string]>([
    ['plain text', 'Mozilla/5.0', 'Mozilla/5.0'],
    ['empty string', '', ''],
    ['null', null, ''],
    ['undefined', undefined, ''],
    ['number', 42, '42'],
    ['negative number (ours, not a formula)', -1, '-1'],
    ['true', true, 'true'],
    ['false', false, 'false'],
    ['comma', 'a,b', '"a,b"'],
    ['quote', 'say "hi"', '"say ""hi"""'],
    ['only a quote', '"', '""""'],
    ['LF inside', 'a\nb', '"a\nb"'],
    ['CRLF inside', 'a\r\nb', '"a\r\nb"'],
    ['CR inside', 'a\rb', '"a\rb"'],
    ['tab inside (no quotes needed)', 'a\tb', 'a\tb'],
    ['space at the start', ' =x', ' =x'],
    ['equals later on', 'a=b', 'a=b'],
    ['unicode', 'ab\u2026cd', 'ab\u2026cd'],
    ['formula =', '=cmd|"/C calc"!A0', `"'=cmd|""/C calc""!A0"`],
    ['formula = alone', '=', "'="],
    ['formula +', '+1', "'+1"],
    ['formula -', '-1', "'-1"],
    ['formula @', '@x', "'@x"],
    ['formula @SUM', '@SUM(1+1)', "'@SUM(1+1)"],
    ['formula tab', '\tx', "'\tx"],
    ['formula CR (also quoted)', '\rx', `"'\rx"`],
    ['formula with comma', '=1,2', `"'=1,2"`],
    ['LF at the start (quoted, not prefixed)', '\nx', '"\nx"'],
    ['starting with an apostrophe: prefixed too, so the prefix is always removable', "'=x", "''=x"],
    ['an apostrophe alone', "'", "''"],
    ['an apostrophe later on', "a'b", "a'b"],
  ])('%s', (_name, input, expected) => {
    expect(csvField(input)).toBe(expected);
  });
});

describe('csvRecord', () => {
  it('joins fields with commas and ends with CRLF', () => {
    expect(csvRecord(['a', 1, true, null, 'b,c'])).toBe('a,1,true,,"b,c"\r\n');
  });

  it('writes an empty record for no fields', () => {
    expect(csvRecord([])).toBe('\r\n');
  });
});

describe('intercept records', () => {
  const base: Intercept = {
    id: '0b0e9f6e-6f3a-4c1e-9d9e-0a1b2c3d4e5f',
    binding_id: 7,
    token_display: 'abcd\u2026wxyz',
    attempt_ip: '198.51.100.9',
    allowed_ips: ['203.0.113.7/32', '2001:db8::/64'],
    reason: 'ip_not_allowed',
    method: 'POST',
    path: '/v1/chat/completions',
    user_agent: 'curl/8.5.0',
    alerted: false,
    intercepted_at: '2025-01-02T03:04:05.678Z',
    count: 1,
    seq: 12,
    hash: 'b'.repeat(64),
    prev_hash: 'a'.repeat(64),
    enforced: true,
  };

  it('has the contract header row', () => {
    expect(INTERCEPT_CSV_HEADER).toBe(
      'intercepted_at,token_display,attempt_ip,allowed_ips,reason,method,path,user_agent,alerted,binding_id,id,count,' +
        'seq,hash,prev_hash,enforced\r\n',
    );
  });

  it('writes the fields in header order', () => {
    expect(interceptCsvRecord(base)).toBe(
      '2025-01-02T03:04:05.678Z,abcd\u2026wxyz,198.51.100.9,203.0.113.7/32 2001:db8::/64,ip_not_allowed,' +
        'POST,/v1/chat/completions,curl/8.5.0,false,7,0b0e9f6e-6f3a-4c1e-9d9e-0a1b2c3d4e5f,1,' +
        `12,${'b'.repeat(64)},${'a'.repeat(64)},true\r\n`,
    );
  });

  it.each<[string, Partial<Intercept>]>([
    ['no user agent', { user_agent: null }],
    ['no allowed IPs', { allowed_ips: [] }],
    ['alerted', { alerted: true, reason: 'key_banned' }],
    ['a record standing for many requests', { count: 4321 }],
    ['hostile user agent', { user_agent: '=HYPERLINK("http://x","y"),\r\n@z' }],
    ['hostile masked key and path', { token_display: '=cmd\u20269999', path: '/a,"b"\nc' }],
    ['tab and CR starts', { user_agent: '\tx', path: '\r/p' }],
    ['apostrophe starts', { user_agent: "'quoted'", token_display: "'=x" }],
    ['not sealed yet, monitor mode', { seq: null, hash: null, prev_hash: null, enforced: false }],
  ])('round-trips through a CSV parser: %s', (_name, change) => {
    const sut = { ...base, ...change };
    const records = parse<Record<string, string>>(INTERCEPT_CSV_HEADER + interceptCsvRecord(sut), {
      columns: true,
      record_delimiter: '\r\n',
    });
    expect(records).toHaveLength(1);
    const neutral = (v: string) => (/^[=+\-@\t\r']/.test(v) ? `'${v}` : v);
    expect(records[0]).toEqual({
      intercepted_at: sut.intercepted_at,
      token_display: neutral(sut.token_display),
      attempt_ip: sut.attempt_ip,
      allowed_ips: sut.allowed_ips.join(' '),
      reason: sut.reason,
      method: sut.method,
      path: neutral(sut.path),
      user_agent: sut.user_agent === null ? '' : neutral(sut.user_agent),
      alerted: String(sut.alerted),
      binding_id: String(sut.binding_id),
      id: sut.id,
      count: String(sut.count),
      seq: sut.seq === null ? '' : String(sut.seq),
      hash: sut.hash ?? '',
      prev_hash: sut.prev_hash ?? '',
      enforced: String(sut.enforced),
    });
    // Taking one leading apostrophe off any cell gives the stored value back.
    const unprefix = (v: string) => (v.startsWith("'") ? v.slice(1) : v);
    expect(unprefix(records[0]!['token_display']!)).toBe(sut.token_display);
    expect(unprefix(records[0]!['path']!)).toBe(sut.path);
    expect(unprefix(records[0]!['user_agent']!)).toBe(sut.user_agent ?? '');
  });
});
