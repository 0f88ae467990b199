/**
 * Property-based tests (fast-check) for the proxy's input parsers: client IP
 * resolution (docs/contract.md 2.2), the request-head scan and key resolution
 * (2.1), canonical keys and masked display.
 */
import {
  canonicalKey,
  canonicalKeyAt,
  formatIp,
  isPrintableKey,
  KEY_CASES,
  KEY_HEADER_PLACES,
  type KeyRules,
  RELAYS,
  MASK,
  maskKey,
  parseCidrList,
  parseIp,
  type TokenNormalize,
} from '@keypin/shared';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_KEY_LENGTH, resolveApiKey } from './api-key';
import { type ClientIpPolicy, resolveClientIp } from './client-ip';
import { type KeyCandidate, queryKeys, scanRequestHead } from './request-head';

const NUM_RUNS = 2000;
const opts = { numRuns: NUM_RUNS };

const KEY_HEADERS = [...KEY_HEADER_PLACES.keys()];
const MODES: TokenNormalize[] = ['newapi', 'none'];
const RULES: KeyRules[] = RELAYS.flatMap((relay) =>
  KEY_CASES.flatMap((keyCase) => MODES.map((tokenNormalize) => ({ relay, keyCase, tokenNormalize }))),
);

const trustedList = parseCidrList('10.0.0.0/8, fd00::/8');
if (!trustedList.ok) throw new Error('bad trusted list in the test');
const trusted: ClientIpPolicy['trusted'] = trustedList.cidrs;
const policies: ClientIpPolicy[] = [
  { trusted, header: 'x-real-ip' },
  { trusted, header: 'x-forwarded-for' },
];

/** A header name: mostly ones the scanner cares about, in any case, plus random ones. */
const headerName = fc.oneof(
  fc.constantFrom(
    ...KEY_HEADERS,
    'Authorization',
    'X-API-KEY',
    'connection',
    'Connection',
    'upgrade',
    'transfer-encoding',
    'content-length',
    'host',
    'x-real-ip',
    'x-forwarded-for',
    'sec-websocket-protocol',
    'user-agent',
    'keep-alive',
  ),
  fc.string({ minLength: 1, maxLength: 12 }),
);
const keyish = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.constantFrom('sk-', 'Bearer ', 'bearer\tsk-', ' ', '-', 'sk--'),
  fc
    .tuple(fc.constantFrom('', 'sk-', 'Bearer ', 'Bearer sk-', ' '), fc.stringMatching(/^[a-z0-9-]{0,12}$/))
    .map(([p, k]) => p + k),
  fc.constantFrom('openai-insecure-api-key.abc, chat', 'close, x-api-key', 'websocket'),
);
const rawHeaders = fc
  .array(fc.tuple(headerName, keyish), { maxLength: 12 })
  .map((pairs) => pairs.flatMap(([n, v]) => [n, v]));

/** An IP claim an attacker might send. */
const ipClaim = fc.oneof(
  fc.ipV4(),
  fc.ipV6(),
  fc.constantFrom('10.0.0.1', '010.0.0.1', '0x7f.1', '127.1', '2130706433', 'fe80::1%eth0', '', ' ', ','),
  fc.string({ maxLength: 20 }),
);
const untrustedPeer = fc.oneof(
  fc.ipV4().filter((s) => !s.startsWith('10.')),
  fc
    .ipV4()
    .filter((s) => !s.startsWith('10.'))
    .map((s) => `::ffff:${s}`),
);

describe('resolveClientIp (fuzz)', () => {
  it('never believes a header from an untrusted peer: the answer is always the peer', () => {
    fc.assert(
      fc.property(
        untrustedPeer,
        fc.array(
          fc.oneof(
            ipClaim,
            fc.array(ipClaim, { maxLength: 4 }).map((a) => a.join(', ')),
          ),
          {
            maxLength: 3,
          },
        ),
        fc.constantFrom(...policies),
        (peer, lines, policy) => {
          const r = resolveClientIp(peer, lines, policy);
          expect(r.ok).toBe(true);
          if (!r.ok) return;
          expect(r.text).toBe(formatIp(parseIp(peer)!));
        },
      ),
      opts,
    );
  });

  it('never throws, and from a trusted peer returns only a strictly valid, canonical address', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('10.1.2.3', '::ffff:10.0.0.1', 'fd00::5'),
        fc.array(
          fc.oneof(
            ipClaim,
            fc.array(ipClaim, { maxLength: 4 }).map((a) => a.join(',')),
          ),
          {
            maxLength: 3,
          },
        ),
        fc.constantFrom(...policies),
        (peer, lines, policy) => {
          const r = resolveClientIp(peer, lines, policy);
          if (lines.length !== 1) {
            expect(r.ok).toBe(false);
            return;
          }
          if (!r.ok) return;
          const again = parseIp(r.text);
          expect(again, r.text).not.toBeNull();
          expect(formatIp(again!)).toBe(r.text);
          expect(formatIp(r.ip)).toBe(r.text);
        },
      ),
      opts,
    );
  });

  it('refuses a missing or unparsable peer address', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 20 }), fc.constantFrom(...policies), (peer, policy) => {
        const r = resolveClientIp(peer, [], policy);
        expect(r.ok).toBe(parseIp(peer) !== null);
      }),
      opts,
    );
    expect(resolveClientIp(undefined, [], policies[0]!).ok).toBe(false);
  });
});

describe('scanRequestHead + resolveApiKey (fuzz)', () => {
  const candidatesOf = (raw: string[], url: string) => {
    const head = scanRequestHead(raw, 'x-real-ip');
    const c: KeyCandidate[] = [...head.keys];
    for (const k of queryKeys(url)) c.push({ place: 'query', value: k });
    return { head, c };
  };
  const url = fc.oneof(
    fc.constant('/v1/models'),
    keyish.map((k) => `/v1?key=${encodeURIComponent(k)}`),
    fc.string({ maxLength: 30 }).map((s) => `/x?${s}`),
  );

  it('never throws on arbitrary header lists and never accepts two different canonical keys', () => {
    fc.assert(
      fc.property(rawHeaders, url, fc.constantFrom(...RULES), (raw, u, rules) => {
        const { head, c } = candidatesOf(raw, u);
        const r = resolveApiKey(c, head.duplicateKeyHeader, rules, u);
        const found = c.map((k) => canonicalKeyAt(k.place, k.value, rules)).filter((k) => k !== null);
        const distinct = new Set(found);
        const tooLong = c.some((k) => k.value.length > MAX_KEY_LENGTH);
        if (r.kind === 'key') {
          // Every place that holds a key holds this one, and it is printable.
          expect(distinct.size).toBe(1);
          expect(distinct.has(r.canonical)).toBe(true);
          expect(isPrintableKey(r.canonical)).toBe(true);
          expect(head.duplicateKeyHeader).toBeNull();
          expect(tooLong).toBe(false);
        } else if (r.kind === 'none') {
          expect(distinct.size).toBe(0);
        } else if (r.kind === 'ambiguous') {
          expect(head.duplicateKeyHeader !== null || distinct.size > 1).toBe(true);
        }
        if (distinct.size > 1) expect(r.kind === 'ambiguous' || r.kind === 'invalid').toBe(true);
      }),
      opts,
    );
  });

  it('flags any key header given on two lines (whatever its case), even with equal values', () => {
    fc.assert(
      fc.property(
        rawHeaders,
        fc.constantFrom(...KEY_HEADERS),
        fc.boolean(),
        fc.string({ maxLength: 10 }),
        (raw, name, upper, value) => {
          const dup = [...raw, name, value, upper ? name.toUpperCase() : name, value];
          const head = scanRequestHead(dup, 'x-real-ip');
          expect(head.duplicateKeyHeader).not.toBeNull();
          expect(resolveApiKey(head.keys, head.duplicateKeyHeader, RULES[0]!, '/x').kind).toBe('ambiguous');
        },
      ),
      opts,
    );
  });

  it('never forwards the client IP headers or hop-by-hop headers, and always forwards key headers', () => {
    const dropped = new Set([
      'x-real-ip',
      'x-forwarded-for',
      'transfer-encoding',
      'connection',
      'host',
      'te',
    ]);
    fc.assert(
      fc.property(rawHeaders, (raw) => {
        const head = scanRequestHead(raw, 'x-real-ip');
        const names = [];
        for (let i = 0; i < head.forward.length; i += 2) names.push(head.forward[i]!.toLowerCase());
        for (const n of names) expect(dropped.has(n), n).toBe(false);
        const keyLines = raw.filter((v, i) => i % 2 === 0 && KEY_HEADERS.includes(v.toLowerCase())).length;
        expect(names.filter((n) => KEY_HEADERS.includes(n)).length).toBe(keyLines);
        expect(head.forward.length % 2).toBe(0);
      }),
      opts,
    );
  });

  it('refuses keys longer than MAX_KEY_LENGTH without canonicalising them', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: MAX_KEY_LENGTH + 1, max: 100_000 }),
        fc.constantFrom(...RULES),
        (len, rules) => {
          const r = resolveApiKey([{ place: 'x-api-key', value: 'a'.repeat(len) }], null, rules, '/x');
          expect(r.kind).toBe('invalid');
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('canonicalKey and maskKey (fuzz)', () => {
  const raw = fc.oneof(
    fc.string({ maxLength: 40 }),
    fc
      .tuple(
        fc.constantFrom('', ' ', 'sk-', ' sk-', 'sk-sk-', '\t'),
        fc.string({ maxLength: 20 }),
        fc.constantFrom('', '-7', '-', ' '),
      )
      .map(([a, b, c]) => a + b + c),
  );

  it('is idempotent under each mode', () => {
    // A canonical key is a fixed point: canonicalising it again changes
    // nothing (else `sk- abc` and `abc` would be two keys, and `sk- -`
    // would bind the blank key " ").
    fc.assert(
      fc.property(raw, fc.constantFrom(...MODES), (s, mode) => {
        const once = canonicalKey(s, mode);
        expect(canonicalKey(once, mode)).toBe(once);
      }),
      opts,
    );
  });

  it('never shows more than 8 characters nor more than half of the key', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (k) => {
        const m = maskKey(k);
        expect(m).toContain(MASK);
        const shown = [...m].length - 1;
        expect(shown).toBeLessThanOrEqual(8);
        expect(shown).toBeLessThanOrEqual(Math.floor(k.length / 2));
        // What is shown is a prefix and a suffix of the key.
        const [head, tail] = m.split(MASK) as [string, string];
        expect(k.startsWith(head)).toBe(true);
        expect(k.endsWith(tail)).toBe(true);
      }),
      opts,
    );
  });
});
