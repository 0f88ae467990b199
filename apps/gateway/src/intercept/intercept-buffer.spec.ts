import { describe, expect, it } from 'vitest';
import { InterceptBuffer } from './intercept-buffer';
import { type InterceptEvent, requestsOf } from './intercept.types';

const T0 = Date.UTC(2025, 0, 1, 10, 0, 0);
const T0_SECOND = T0 / 1000;
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

describe('InterceptBuffer', () => {
  it('merges the requests of one key, IP and reason within one second into the first one’s record', () => {
    const sut = new InterceptBuffer();
    const first = refused(0);
    sut.add(first);
    for (let ms = 1; ms < 1000; ms += 100) sut.add(refused(ms, { path: '/other', userAgent: 'other' }));
    expect(sut.size).toBe(1);
    const [record, ...rest] = sut.take();
    expect(rest).toEqual([]);
    // The record is the first request's (its id, time, path and agent), counting all of them.
    expect(record).toBe(first);
    expect(record).toMatchObject({ id: first.id, at: first.at, path: '/v1/models', count: 11 });
  });

  it('keeps a lone request as it is: count 1', () => {
    const sut = new InterceptBuffer();
    sut.add(refused(5));
    const records = sut.take();
    expect(records.map(requestsOf)).toEqual([1]);
  });

  it.each<[string, number, Partial<InterceptEvent>]>([
    ['another second', 1000, {}],
    ['another IP', 10, { attemptIp: '198.51.100.10' }],
    ['another reason', 10, { reason: 'key_banned' }],
    ['another binding', 10, { bindingId: 8 }],
    ['another masked key', 10, { tokenDisplay: 'zzzz\u2026wxyz' }],
    ['monitor mode', 10, { enforced: false }],
  ])('starts a separate record for %s', (_name, ms, change) => {
    const sut = new InterceptBuffer();
    sut.add(refused(0));
    sut.add(refused(ms, change));
    expect(sut.take().map(requestsOf)).toEqual([1, 1]);
  });

  it('sums counts exactly over many groups and seconds', () => {
    const sut = new InterceptBuffer();
    let sent = 0;
    for (let ms = 0; ms < 3000; ms += 3) {
      for (const ip of ['198.51.100.1', '198.51.100.2']) {
        sut.add(refused(ms, { attemptIp: ip }));
        sent++;
      }
    }
    const records = sut.take();
    expect(records).toHaveLength(6); // 3 seconds × 2 addresses
    expect(total(records)).toBe(sent);
    expect(new Set(records.map((r) => r.id)).size).toBe(6);
  });

  it('adds the counts of records handed in already merged', () => {
    const sut = new InterceptBuffer();
    sut.add(refused(0, { count: 3 }));
    sut.add(refused(1, { count: 4 }));
    expect(sut.take().map(requestsOf)).toEqual([7]);
  });

  it('leaves the running second in place and hands on the ended ones, oldest first', () => {
    const sut = new InterceptBuffer();
    sut.add(refused(2100));
    sut.add(refused(100));
    sut.add(refused(1100));
    const ended = sut.take(T0_SECOND + 2);
    expect(ended.map((r) => r.at.getTime() - T0)).toEqual([100, 1100]);
    expect(sut.size).toBe(1);
    sut.add(refused(2200));
    expect(sut.take().map(requestsOf)).toEqual([2]);
  });

  it('never changes a record once taken: a later request of its second starts a new record', () => {
    const sut = new InterceptBuffer();
    sut.add(refused(0));
    sut.add(refused(1));
    const [taken] = sut.take();
    const copy = structuredClone(taken);
    sut.add(refused(2));
    sut.add(refused(3));
    expect(taken).toEqual(copy);
    const [next] = sut.take();
    expect(next).not.toBe(taken);
    expect(requestsOf(next!)).toBe(2);
  });

  it('keeps records put back as they are and merges nothing into them', () => {
    const sut = new InterceptBuffer();
    sut.add(refused(0));
    sut.add(refused(1));
    const failed = sut.take();
    sut.putBack(failed);
    sut.add(refused(2));
    expect(sut.size).toBe(2);
    const again = sut.take();
    expect(again[0]).toBe(failed[0]);
    expect(again.map(requestsOf)).toEqual([2, 1]);
    expect(sut.size).toBe(0);
  });

  it('hands on records put back even while keeping the running second', () => {
    const sut = new InterceptBuffer();
    const r = refused(0);
    sut.putBack([r]);
    sut.add(refused(10));
    expect(sut.take(T0_SECOND)).toEqual([r]);
    expect(sut.size).toBe(1);
  });
});
