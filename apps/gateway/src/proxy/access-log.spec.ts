import { describe, expect, it } from 'vitest';
import { AccessLog, type AccessEntry, type LineSink } from './access-log';

class Lines implements LineSink {
  lines: string[] = [];
  write(line: string): void {
    this.lines.push(line);
  }
  flushSync(): void {}
}

const entry = (over: Partial<AccessEntry> = {}): AccessEntry => ({
  clientIp: '203.0.113.7',
  key: 'abcd\u2026wxyz',
  route: null,
  method: 'POST',
  target: '/v1/chat/completions?key=sk-secret&x="y"',
  status: 200,
  decision: 'allowed',
  bytesIn: 120,
  bytesOut: 4096,
  durationMs: 12.34567,
  ...over,
});

describe('AccessLog', () => {
  it('writes one JSON line with the contract fields, the path without its query', () => {
    const sink = new Lines();
    new AccessLog(sink).write(entry());
    expect(sink.lines).toHaveLength(1);
    expect(sink.lines[0]!.endsWith('\n')).toBe(true);
    const o = JSON.parse(sink.lines[0]!) as Record<string, unknown>;
    expect(Object.keys(o)).toEqual([
      'time',
      'client_ip',
      'key',
      'route',
      'method',
      'path',
      'status',
      'decision',
      'bytes_in',
      'bytes_out',
      'duration_ms',
    ]);
    expect(o).toMatchObject({
      client_ip: '203.0.113.7',
      key: 'abcd\u2026wxyz',
      route: null,
      method: 'POST',
      path: '/v1/chat/completions',
      status: 200,
      decision: 'allowed',
      bytes_in: 120,
      bytes_out: 4096,
      duration_ms: 12.346,
    });
    expect(sink.lines[0]).not.toContain('sk-secret');
    expect(Date.parse(o['time'] as string)).not.toBeNaN();
  });

  it('escapes what it writes: a path or method with quotes or control characters stays one valid line', () => {
    const sink = new Lines();
    new AccessLog(sink).write(
      entry({ target: '/a"b\\c\n\u0000d', method: 'GE"T', key: null, clientIp: null }),
    );
    expect(sink.lines[0]!.split('\n')).toHaveLength(2);
    expect(JSON.parse(sink.lines[0]!)).toMatchObject({ path: '/a"b\\c\n\u0000d', method: 'GE"T', key: null });
  });
});
