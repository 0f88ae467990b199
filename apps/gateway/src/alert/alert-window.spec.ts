import { describe, expect, it } from 'vitest';
import { planAlerts, type WindowItem } from './alert-window';

const at = (...times: number[]): WindowItem[] =>
  times.map((t, n) => ({ id: `i${n}`, at: t * 1000, ip: `10.0.0.${n}`, count: 1 }));
/** Records as [second, requests] pairs. */
const records = (...pairs: [number, number][]): WindowItem[] =>
  pairs.map(([t, count], n) => ({ id: `r${n}`, at: t * 1000, ip: '10.0.1.1', count }));
const ids = (items: WindowItem[]) => items.map((i) => i.id);

describe('planAlerts', () => {
  it('raises nothing below the threshold', () => {
    expect(planAlerts(at(0, 1), 3, 300_000, null)).toEqual({ attach: [], windows: [] });
  });

  it('raises one alert when the threshold is reached within the window', () => {
    const sut = planAlerts(at(0, 10, 20), 3, 300_000, null);
    expect(sut.windows).toHaveLength(1);
    expect(sut.windows[0]).toMatchObject({ count: 3, firstAt: 0, lastAt: 20_000, windowEnd: 300_000 });
    expect(ids(sut.windows[0]!.items)).toEqual(['i0', 'i1', 'i2']);
  });

  it('puts every later intercept of the window into the same alert', () => {
    const sut = planAlerts(at(0, 1, 2, 3, 4, 299, 300), 3, 300_000, null);
    expect(sut.windows).toHaveLength(1);
    expect(sut.windows[0]!.items).toHaveLength(7);
  });

  it('does not count intercepts spread wider than the window', () => {
    expect(planAlerts(at(0, 200, 400, 600), 3, 300_000, null).windows).toHaveLength(0);
  });

  it('slides past an early straggler to find the window', () => {
    const sut = planAlerts(at(0, 500, 501, 502), 3, 300_000, null);
    expect(sut.windows).toHaveLength(1);
    expect(ids(sut.windows[0]!.items)).toEqual(['i1', 'i2', 'i3']);
  });

  it('raises a second alert only after the first window is over', () => {
    const sut = planAlerts(at(0, 1, 2, 400, 401, 402), 3, 300_000, null);
    expect(sut.windows.map((w) => w.firstAt)).toEqual([0, 400_000]);
  });

  it('attaches intercepts that fall in the last alert window, then looks for new windows', () => {
    const sut = planAlerts(at(100, 200, 400, 401, 402), 3, 300_000, { id: 'a1', windowEnd: 300_000 });
    expect(ids(sut.attach)).toEqual(['i0', 'i1']);
    expect(sut.windows).toHaveLength(1);
    expect(sut.windows[0]!.firstAt).toBe(400_000);
  });

  it('handles a threshold of one', () => {
    expect(planAlerts(at(0, 1000), 1, 300_000, null).windows).toHaveLength(2);
  });

  describe('records standing for several requests', () => {
    it('one record reaching the threshold by itself raises one alert counting its requests', () => {
      const sut = planAlerts(records([0, 5]), 5, 300_000, null);
      expect(sut.windows).toHaveLength(1);
      expect(sut.windows[0]).toMatchObject({ count: 5, firstAt: 0, lastAt: 0 });
    });

    it('counts requests, not records: two records of 2 stay below a threshold of 5', () => {
      expect(planAlerts(records([0, 2], [1, 2]), 5, 300_000, null).windows).toHaveLength(0);
      const sut = planAlerts(records([0, 2], [1, 2], [2, 1]), 5, 300_000, null);
      expect(sut.windows.map((w) => [w.count, ids(w.items)])).toEqual([[5, ['r0', 'r1', 'r2']]]);
    });

    it('the window count is every request until the window ends', () => {
      const sut = planAlerts(records([0, 3], [10, 400], [299, 7], [301, 1]), 3, 300_000, null);
      expect(sut.windows.map((w) => w.count)).toEqual([410]);
    });

    it('slides past heavy records that are too early', () => {
      const sut = planAlerts(records([0, 4], [400, 1], [401, 4]), 5, 300_000, null);
      expect(sut.windows).toHaveLength(1);
      expect(sut.windows[0]).toMatchObject({ count: 5, firstAt: 400_000 });
    });

    it('needs a fresh threshold of requests after a window', () => {
      const sut = planAlerts(records([0, 5], [400, 4], [401, 1], [402, 9]), 5, 300_000, null);
      expect(sut.windows.map((w) => [w.firstAt, w.count])).toEqual([
        [0, 5],
        [400_000, 14],
      ]);
    });
  });
});
