import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { INTERCEPT_CSV_HEADER, interceptCsvRecord } from './csv';
import { InterceptCsvStream } from './logs-export';
import { type InterceptRow, toIntercept } from './intercept-log.repository';

const row = (n: number): InterceptRow => ({
  id: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
  binding_id: '7',
  token_display: '=abc\u2026wxyz',
  attempt_ip: '198.51.100.9',
  allowed_ips: ['203.0.113.0/24', '2001:db8::/64'],
  reason: 'ip_not_allowed',
  method: 'GET',
  path: `/v1/models/${n}`,
  user_agent: n % 2 === 0 ? 'ua, "quoted"' : null,
  alerted: n % 3 === 0,
  intercepted_at: new Date(Date.UTC(2025, 0, 1) - n * 1000),
  count: n % 4 === 0 ? 250 : 1,
});

describe('InterceptCsvStream', () => {
  it('offers the header row before any row is written', () => {
    const sut = new InterceptCsvStream();
    expect((sut.read() as Buffer).toString('utf8')).toBe(INTERCEPT_CSV_HEADER);
    sut.destroy();
  });

  it.each([0, 1, 3, 1000])('turns %i rows into the header and one record each', async (count) => {
    const rows = Array.from({ length: count }, (_, i) => row(i + 1));
    const sut = new InterceptCsvStream();
    const out = text(Readable.from(rows).pipe(sut));
    expect(await out).toBe(
      INTERCEPT_CSV_HEADER + rows.map((r) => interceptCsvRecord(toIntercept(r))).join(''),
    );
    expect(sut.rows).toBe(count);
  });

  it('writes bigint ids as numbers, times in ISO-8601 UTC and the count last', async () => {
    const sut = new InterceptCsvStream();
    const out = text(Readable.from([row(1), row(4)]).pipe(sut));
    const [, first, second] = (await out).split('\r\n');
    expect(first).toBe(
      "2024-12-31T23:59:59.000Z,'=abc\u2026wxyz,198.51.100.9,203.0.113.0/24 2001:db8::/64,ip_not_allowed,GET," +
        '/v1/models/1,,false,7,00000000-0000-4000-8000-000000000001,1',
    );
    expect(second).toMatch(/,00000000-0000-4000-8000-000000000004,250$/);
  });

  it('joins the records of one batch into large chunks', async () => {
    const sut = new InterceptCsvStream();
    const chunks: Buffer[] = [];
    sut.on('data', (c: Buffer) => chunks.push(c));
    const done = new Promise((r) => sut.on('end', r));
    Readable.from(Array.from({ length: 2000 }, (_, i) => row(i))).pipe(sut);
    await done;
    expect(chunks.length).toBeLessThan(100);
    expect(Math.max(...chunks.map((c) => c.length))).toBeLessThanOrEqual(64 * 1024 + 1024);
  });
});
