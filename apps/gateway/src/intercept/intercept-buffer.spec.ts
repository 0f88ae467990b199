import { describe, expect, it } from 'vitest';
import { InterceptBuffer, MAX_BUFFERED_RECORDS } from './intercept-buffer';
import { type InterceptEvent, requestsOf } from './intercept.types';

const T0 = Date.UTC(2025, 0, 1, 10, 0, 0);
let n = 0;

/** A refused request as the proxy hands it over (no count), `ms` after T0. */
function refused(ms: number, change: Partial<InterceptEvent> = {}): InterceptEvent {
  return {
    id: `id-${++n}`,
    bindingId: 7,
    tokenDisplay: 'abcd\u2026wxyz',
    attemptIp: '198.51.100.9',
    allowedIps: ['203.0.113.7/32'],
    reason: 'ip_not_allowed',
    method: 'GET',
    path: '/v1/models',
    userAgent: 'curl/8',
    enforced: true,
    at: new Date(T0 + ms),
    ...change,
  };
}

const total = (records: readonly InterceptEvent[]) => records.reduce((s, r) => s + requestsOf(r), 0);

/** A buffer whose batches land in `batches` (the very objects handed on); `failNext` fails the next write. */
function buffer() {
  const batches: InterceptEvent[][] = [];
  const state = { failNext: false };
  const sut = new InterceptBuffer(
    (batch) => {
      if (state.failNext) {
        state.failNext = false;
        return Promise.reject(new Error('down'));
      }
      batches.push(batch);
      return Promise.resolve();
    },
    { flushMs: 100 },
  );
  return { sut, batches, state };
}

/** Everything buffered, through a flush. */
async function takeAll(sut: InterceptBuffer, batches: InterceptEvent[][]): Promise<InterceptEvent[]> {
  const before = batches.length;
  await sut.flush();
  return batches.slice(before).flat();
}

describe('InterceptBuffer', () => {
  it('merges the requests of one key, IP and reason within one second into the first one’s record', async () => {
    const { sut, batches } = buffer();
    const first = refused(0);
    sut.add(first);
    for (let ms = 1; ms < 1000; ms += 100) sut.add(refused(ms, { path: '/other', userAgent: 'other' }));
    expect(sut.size).toBe(1);
    const [record, ...rest] = await takeAll(sut, batches);
    expect(rest).toEqual([]);
    // The record is the first request's (its id, time, path and agent), counting all of them.
    expect(record).toBe(first);
    expect(record).toMatchObject({ id: first.id, at: first.at, path: '/v1/models', count: 11 });
  });

  it('keeps a lone request as it is: count 1', async () => {
    const { sut, batches } = buffer();
    sut.add(refused(5));
    const records = await takeAll(sut, batches);
    expect(records.map(requestsOf)).toEqual([1]);
  });

  it.each<[string, number, Partial<InterceptEvent>]>([
    ['another second', 1000, {}],
    ['another IP', 10, { attemptIp: '198.51.100.10' }],
    ['another reason', 10, { reason: 'key_banned' }],
    ['another binding', 10, { bindingId: 8 }],
    ['another masked key', 10, { tokenDisplay: 'zzzz\u2026wxyz' }],
    ['monitor mode', 10, { enforced: false }],
  ])('starts a separate record for %s', async (_name, ms, change) => {
    const { sut, batches } = buffer();
    sut.add(refused(0));
    sut.add(refused(ms, change));
    expect((await takeAll(sut, batches)).map(requestsOf)).toEqual([1, 1]);
  });

  it('sums counts exactly over many groups and seconds', async () => {
    const { sut, batches } = buffer();
    let sent = 0;
    for (let ms = 0; ms < 3000; ms += 3) {
      for (const ip of ['198.51.100.1', '198.51.100.2']) {
        sut.add(refused(ms, { attemptIp: ip }));
        sent++;
      }
    }
    const records = await takeAll(sut, batches);
    expect(records).toHaveLength(6); // 3 seconds × 2 addresses
    expect(total(records)).toBe(sent);
    expect(new Set(records.map((r) => r.id)).size).toBe(6);
  });

  it('adds the counts of records handed in already merged', async () => {
    const { sut, batches } = buffer();
    sut.add(refused(0, { count: 3 }));
    sut.add(refused(1, { count: 4 }));
    expect((await takeAll(sut, batches)).map(requestsOf)).toEqual([7]);
  });

  it('on the timer, leaves the running second in place and hands on the ended ones, oldest first', async () => {
    const { sut, batches } = buffer();
    sut.add(refused(2100));
    sut.add(refused(1100));
    sut.add(refused(100));
    await sut.flushDue(T0 + 2500);
    expect(batches.flat().map((r) => r.at.getTime() - T0)).toEqual([100, 1100]);
    expect(sut.size).toBe(1);
    sut.add(refused(2200));
    expect((await takeAll(sut, batches)).map(requestsOf)).toEqual([2]);
  });

  it('never changes a record once handed on: a later request of its second starts a new record', async () => {
    const { sut, batches } = buffer();
    sut.add(refused(0));
    sut.add(refused(1));
    const [taken] = await takeAll(sut, batches);
    const copy = structuredClone(taken);
    sut.add(refused(2));
    sut.add(refused(3));
    expect(taken).toEqual(copy);
    const [next] = await takeAll(sut, batches);
    expect(next).not.toBe(taken);
    expect(requestsOf(next!)).toBe(2);
  });

  it('keeps records of a failed batch as they are, merges nothing into them and hands them on first', async () => {
    const { sut, batches, state } = buffer();
    const first = refused(0);
    sut.add(first);
    sut.add(refused(1));
    state.failNext = true;
    await sut.flush();
    expect(batches).toHaveLength(0);
    expect(sut.size).toBe(1);
    sut.add(refused(2));
    expect(sut.size).toBe(2);
    const again = await takeAll(sut, batches);
    expect(again[0]).toBe(first);
    expect(again.map(requestsOf)).toEqual([2, 1]);
    expect(sut.size).toBe(0);
  });

  it('hands on records put back even while keeping the running second', async () => {
    const { sut, batches } = buffer();
    const r = refused(0);
    sut.putBack([r]);
    sut.add(refused(10));
    await sut.flushDue(T0 + 500);
    expect(batches).toEqual([[r]]);
    expect(sut.size).toBe(1);
  });

  it(`hands everything on, the running second too, once ${MAX_BUFFERED_RECORDS} records wait`, async () => {
    const { sut, batches } = buffer();
    for (let i = 0; i < MAX_BUFFERED_RECORDS - 1; i++)
      sut.add(refused(0, { attemptIp: `10.0.${i >> 8}.${i & 255}` }));
    sut.add(refused(1, { attemptIp: '10.0.0.0' })); // a merge: no flush
    expect(batches).toHaveLength(0);
    sut.add(refused(2));
    await sut.stop();
    expect(batches).toHaveLength(1);
    expect(batches[0]).toHaveLength(MAX_BUFFERED_RECORDS);
    expect(total(batches[0]!)).toBe(MAX_BUFFERED_RECORDS + 1);
  });
});
