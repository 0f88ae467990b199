import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import type { Logger } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { KeypinError } from '../infra/http/all-exceptions.filter';
import { INTERCEPT_CSV_HEADER, interceptCsvRecord } from './csv';
import type { InterceptFilter } from './intercept-filter';
import { InterceptCsvStream, InterceptExporter } from './logs-export';
import {
  type InterceptLogRepository,
  type InterceptRow,
  type InterceptRowCursor,
  toIntercept,
} from './intercept-log.repository';

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
  enforced: n % 5 !== 0,
  seq: n % 7 === 0 ? null : String(n),
  prev_hash: n % 7 === 0 ? null : 'a'.repeat(64),
  hash: n % 7 === 0 ? null : 'b'.repeat(64),
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

  it('writes bigint ids as numbers, times in ISO-8601 UTC, the count, then the hash chain and the mode', async () => {
    const sut = new InterceptCsvStream();
    const out = text(Readable.from([row(1), row(4), row(7)]).pipe(sut));
    const [, first, second, unsealed] = (await out).split('\r\n');
    expect(first).toBe(
      "2024-12-31T23:59:59.000Z,'=abc\u2026wxyz,198.51.100.9,203.0.113.0/24 2001:db8::/64,ip_not_allowed,GET," +
        `/v1/models/1,,false,7,00000000-0000-4000-8000-000000000001,1,1,${'b'.repeat(64)},${'a'.repeat(64)},true`,
    );
    expect(second).toMatch(/,00000000-0000-4000-8000-000000000004,250,4,b{64},a{64},true$/);
    expect(unsealed).toMatch(/,00000000-0000-4000-8000-000000000007,1,,,,true$/);
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

describe('InterceptExporter', () => {
  const filter: InterceptFilter = {
    bindingId: null,
    tokenLike: null,
    network: null,
    reason: null,
    from: null,
    to: null,
  };
  const logger = { info: vi.fn(), warn: vi.fn(), debug: vi.fn() } as unknown as Logger;

  /** A repository whose cursors yield `rows` and record when they are closed. */
  function fakeRepo(rows: () => Readable) {
    const cursors: { close: ReturnType<typeof vi.fn>; rows: Readable }[] = [];
    const openCursor = vi.fn((_f: InterceptFilter, _batch: number): Promise<InterceptRowCursor> => {
      const c = { rows: rows(), close: vi.fn(() => Promise.resolve()) };
      cursors.push(c);
      return Promise.resolve(c);
    });
    return { repo: { openCursor } as unknown as InterceptLogRepository, openCursor, cursors };
  }

  const settle = () => new Promise((r) => setTimeout(r, 10));

  it('streams the cursor as CSV and closes it at the end', async () => {
    const { repo, openCursor, cursors } = fakeRepo(() => Readable.from([row(1), row(2)]));
    const sut = new InterceptExporter(repo, logger);
    const csv = await sut.open(filter);
    expect(await text(csv)).toBe(
      INTERCEPT_CSV_HEADER + [row(1), row(2)].map((r) => interceptCsvRecord(toIntercept(r))).join(''),
    );
    await settle();
    expect(openCursor).toHaveBeenCalledWith(filter, 256);
    expect(cursors[0]!.close).toHaveBeenCalledOnce();
  });

  it('closes the cursor when the download is dropped, and frees its slot', async () => {
    const { repo, cursors } = fakeRepo(() => new Readable({ objectMode: true, read() {} }));
    const sut = new InterceptExporter(repo, logger, 1);
    const csv = await sut.open(filter);
    csv.destroy();
    await settle();
    expect(cursors[0]!.close).toHaveBeenCalledOnce();
    expect(cursors[0]!.rows.destroyed).toBe(true);
    (await sut.open(filter)).destroy();
  });

  it('refuses an export beyond the limit with too_many_attempts', async () => {
    const { repo } = fakeRepo(() => new Readable({ objectMode: true, read() {} }));
    const sut = new InterceptExporter(repo, logger, 2);
    const open = [await sut.open(filter), await sut.open(filter)];
    const refused = await sut.open(filter).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(KeypinError);
    expect((refused as KeypinError).code).toBe('too_many_attempts');
    for (const s of open) s.destroy();
    await settle();
    (await sut.open(filter)).destroy();
  });

  it('frees the slot when the connection cannot be opened', async () => {
    const openCursor = vi
      .fn<(f: InterceptFilter, batch: number) => Promise<InterceptRowCursor>>()
      .mockRejectedValueOnce(new Error('connection refused'))
      .mockResolvedValue({ rows: Readable.from([]), close: () => Promise.resolve() });
    const sut = new InterceptExporter({ openCursor } as unknown as InterceptLogRepository, logger, 1);
    await expect(sut.open(filter)).rejects.toThrow('connection refused');
    await text(await sut.open(filter));
  });
});
