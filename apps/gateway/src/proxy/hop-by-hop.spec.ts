import { describe, expect, it } from 'vitest';
import { HOP_BY_HOP_HEADERS } from './hop-by-hop';

describe('HOP_BY_HOP_HEADERS', () => {
  it("is docs/contract.md 2.4's list, in lower case", () => {
    expect([...HOP_BY_HOP_HEADERS].sort()).toEqual(
      [
        'connection',
        'keep-alive',
        'proxy-connection',
        'te',
        'trailer',
        'transfer-encoding',
        'upgrade',
      ].sort(),
    );
  });
});
