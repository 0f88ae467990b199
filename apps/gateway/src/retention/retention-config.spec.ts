import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../config/config';

function failure(value: string): ConfigError {
  try {
    loadConfig({ INTERCEPT_RETENTION_DAYS: value });
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('INTERCEPT_RETENTION_DAYS', () => {
  it('defaults to 365 days', () => {
    expect(loadConfig({}).interceptRetentionDays).toBe(365);
    expect(loadConfig({ INTERCEPT_RETENTION_DAYS: ' ' }).interceptRetentionDays).toBe(365);
  });

  it.each([
    ['1', 1],
    ['30', 30],
    ['36500', 36_500],
  ])('takes %s', (raw, days) => {
    expect(loadConfig({ INTERCEPT_RETENTION_DAYS: raw }).interceptRetentionDays).toBe(days);
  });

  it.each(['0', '-5', '1.5', '30d', 'abc', '1e3', '36501'])('refuses %s, naming the variable', (raw) => {
    const sut = failure(raw);
    expect(sut.variable).toBe('INTERCEPT_RETENTION_DAYS');
    expect(sut.message).toMatch(/^Invalid configuration: INTERCEPT_RETENTION_DAYS must be/);
  });
});
