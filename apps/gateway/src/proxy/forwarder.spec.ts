import { describe, expect, it } from 'vitest';
import { filterResponseHeaders } from './forwarder';

const raw = (flat: string[]) => flat.map((s) => Buffer.from(s, 'latin1'));

describe('filterResponseHeaders', () => {
  it('drops hop-by-hop headers and those Connection names, keeps the rest verbatim', () => {
    const sut = filterResponseHeaders(
      raw([
        'Content-Type',
        'text/event-stream',
        'Connection',
        'keep-alive, X-Down-Hop',
        'X-Down-Hop',
        '1',
        'Keep-Alive',
        'timeout=5',
        'Transfer-Encoding',
        'chunked',
        'Set-Cookie',
        'a=1',
        'Set-Cookie',
        'b=2',
        'X-Bytes',
        '\u00e9t\u00e9',
      ]),
    );
    expect(sut).toEqual([
      'Content-Type',
      'text/event-stream',
      'Set-Cookie',
      'a=1',
      'Set-Cookie',
      'b=2',
      'X-Bytes',
      '\u00e9t\u00e9',
    ]);
  });
});
