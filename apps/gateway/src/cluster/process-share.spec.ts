import { describe, expect, it } from 'vitest';
import { perProcessShare } from './process-share';

describe('perProcessShare', () => {
  it('leaves a single process and "unlimited" alone', () => {
    expect(perProcessShare(1024, 1)).toBe(1024);
    expect(perProcessShare(0, 4)).toBe(0);
  });
  it('splits a limit over N processes, rounding up, never below 1', () => {
    expect(perProcessShare(1024, 2)).toBe(512);
    expect(perProcessShare(5, 2)).toBe(3);
    expect(perProcessShare(3, 8)).toBe(1);
  });
});
