import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config';

describe('PUBLIC_URL', () => {
  it('is null when unset', () => {
    expect(loadConfig({}).publicUrl).toBeNull();
    expect(loadConfig({ PUBLIC_URL: '  ' }).publicUrl).toBeNull();
  });

  it.each([
    ['https://keypin.example.com', 'https://keypin.example.com'],
    ['https://keypin.example.com/', 'https://keypin.example.com'],
    ['https://Example.COM:8443/keypin//', 'https://example.com:8443/keypin'],
    ['http://10.0.0.5:8080', 'http://10.0.0.5:8080'],
  ])('reads %s as the base %s', (raw, base) => {
    expect(loadConfig({ PUBLIC_URL: raw }).publicUrl).toBe(base);
  });

  it.each([
    'keypin.example.com',
    'ftp://example.com',
    'https://example.com/?a=1',
    'https://example.com/#x',
    'https://u:p@example.com',
  ])('refuses %s naming PUBLIC_URL', (raw) => {
    expect(() => loadConfig({ PUBLIC_URL: raw })).toThrow(ConfigError);
    expect(() => loadConfig({ PUBLIC_URL: raw })).toThrow(/PUBLIC_URL/);
  });
});
