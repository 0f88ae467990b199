/**
 * Property-based tests (fast-check) for the strict IP / CIDR parser
 * (docs/contract.md 2.2; SECURITY.md "A spoofed client IP"). Each property reports its
 * run count through NUM_RUNS; the totals are quoted in docs/reliability.md.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatCidr, formatIp, networkOf, parseCidr, parseIp } from './ip';

const NUM_RUNS = 2000;
const opts = { numRuns: NUM_RUNS };

const byte = fc.integer({ min: 0, max: 255 });
const word = fc.integer({ min: 0, max: 0xffff });
const eightWords = fc.array(word, { minLength: 8, maxLength: 8 });

function sameBytes(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (a === undefined || b === undefined || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Strings biased towards the characters an IP parser cares about. */
const ipish = fc.string({
  unit: fc.constantFrom(...'0123456789abcdefABCDEFxX.:%/[] \t-+'.split('')),
  maxLength: 50,
});

/** Every spelling of an IPv6 address given as eight 16-bit words. */
function spellings(words: number[]): string[] {
  const full = words.map((w) => w.toString(16).padStart(4, '0')).join(':');
  const short = words.map((w) => w.toString(16)).join(':');
  const out = [full, short, full.toUpperCase(), short.toUpperCase()];
  // Every legal "::" compression (a run of at least one zero word).
  for (let i = 0; i < 8; i++) {
    for (let j = i + 1; j <= 8; j++) {
      if (words.slice(i, j).some((w) => w !== 0)) break;
      const head = words.slice(0, i).map((w) => w.toString(16));
      const tail = words.slice(j).map((w) => w.toString(16));
      out.push(`${head.join(':')}::${tail.join(':')}`);
    }
  }
  return out;
}

describe('parseIp (fuzz)', () => {
  it(`never throws and only returns well-formed results on arbitrary strings (${NUM_RUNS} runs x 3)`, () => {
    for (const arb of [fc.string({ maxLength: 64 }), fc.string({ unit: 'binary', maxLength: 64 }), ipish]) {
      fc.assert(
        fc.property(arb, (s) => {
          const ip = parseIp(s);
          if (ip === null) return;
          expect(ip.bytes.length).toBe(ip.version === 4 ? 4 : 16);
          expect(s).not.toMatch(/[\s%/[\]]/);
        }),
        opts,
      );
    }
  });

  it('accepts an IPv4 only as four decimal parts without leading zeros, and it round-trips', () => {
    fc.assert(
      fc.property(ipish, (s) => {
        const ip = parseIp(s);
        if (ip === null || s.includes(':')) return;
        expect(s).toMatch(/^(0|[1-9][0-9]{0,2})(\.(0|[1-9][0-9]{0,2})){3}$/);
        expect(formatIp(ip)).toBe(s);
      }),
      opts,
    );
    fc.assert(
      fc.property(fc.ipV4(), (s) => {
        const ip = parseIp(s);
        expect(ip?.version).toBe(4);
        expect(formatIp(ip!)).toBe(s);
      }),
      opts,
    );
  });

  it('refuses every inet_aton spelling (integer, hex, octal, leading zeros, short forms)', () => {
    const aton = fc.oneof(
      // One 32-bit integer, in decimal, hex or octal.
      fc.integer({ min: 0, max: 0xffffffff }).map((n) => String(n)),
      fc.integer({ min: 0, max: 0xffffffff }).map((n) => `0x${n.toString(16)}`),
      fc.integer({ min: 0, max: 0xffffffff }).map((n) => `0${n.toString(8)}`),
      // a.b (8 + 24 bits) and a.b.c (8 + 8 + 16 bits).
      fc.tuple(byte, fc.integer({ min: 0, max: 0xffffff })).map(([a, b]) => `${a}.${b}`),
      fc.tuple(byte, byte, word).map(([a, b, c]) => `${a}.${b}.${c}`),
      // Four parts where at least one is hex or has a leading zero.
      fc
        .tuple(byte, byte, byte, byte, fc.integer({ min: 0, max: 3 }), fc.constantFrom('hex', 'oct', 'zero'))
        .map(([a, b, c, d, at, how]) => {
          const parts = [a, b, c, d].map(String);
          const v = [a, b, c, d][at]!;
          parts[at] = how === 'hex' ? `0x${v.toString(16)}` : how === 'oct' ? `0${v.toString(8)}` : `00${v}`;
          return parts.join('.');
        }),
      // Five parts, a trailing dot, an out-of-range part.
      fc.tuple(byte, byte, byte, byte, byte).map((p) => p.join('.')),
      fc.ipV4().map((s) => `${s}.`),
      fc.tuple(byte, byte, byte, fc.integer({ min: 256, max: 99999 })).map((p) => p.join('.')),
    );
    fc.assert(
      fc.property(aton, (s) => {
        expect(parseIp(s)).toBeNull();
        // The same spelling as the embedded IPv4 of a mapped IPv6 (a dotless
        // form there is an IPv6 hex group, a different question).
        if (s.includes('.')) expect(parseIp(`::ffff:${s}`)).toBeNull();
      }),
      opts,
    );
  });

  it('parses every fc.ipV6() address, and its canonical text parses back to it', () => {
    fc.assert(
      fc.property(fc.ipV6(), (s) => {
        const ip = parseIp(s);
        expect(ip, s).not.toBeNull();
        // The canonical text parses back to the same address.
        const again = parseIp(formatIp(ip!));
        expect(again?.version).toBe(ip!.version);
        expect(sameBytes(again?.bytes, ip!.bytes)).toBe(true);
      }),
      opts,
    );
  });

  it('compares every spelling (expanded, compressed, upper case) of one IPv6 address as equal', () => {
    // Words drawn so that zero runs (and so "::" forms) are common.
    const w = fc.oneof(fc.constant(0), fc.constant(0), word);
    fc.assert(
      fc.property(fc.array(w, { minLength: 8, maxLength: 8 }), (words) => {
        const forms = spellings(words);
        const first = parseIp(forms[0]!);
        expect(first).not.toBeNull();
        for (const f of forms) {
          const ip = parseIp(f);
          expect(ip, f).not.toBeNull();
          expect(ip!.version).toBe(first!.version);
          expect(sameBytes(ip!.bytes, first!.bytes), f).toBe(true);
          expect(formatIp(ip!)).toBe(formatIp(first!));
        }
      }),
      opts,
    );
  });

  it('folds every IPv4-mapped spelling to the IPv4 address', () => {
    fc.assert(
      fc.property(fc.ipV4(), fc.integer({ min: 0, max: 3 }), (v4, how) => {
        const [a, b, c, d] = v4.split('.').map(Number) as [number, number, number, number];
        const hi = ((a << 8) | b).toString(16);
        const lo = ((c << 8) | d).toString(16);
        const form = [
          `::ffff:${v4}`,
          `::FFFF:${hi}:${lo}`,
          `0:0:0:0:0:ffff:${v4}`,
          `0000:0000:0000:0000:0000:FFFF:${hi.toUpperCase()}:${lo}`,
        ][how]!;
        const ip = parseIp(form);
        expect(ip?.version, form).toBe(4);
        expect(formatIp(ip!)).toBe(v4);
      }),
      opts,
    );
  });

  it('never parses a string with a zone id (%)', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.ipV6(), fc.ipV4(), ipish),
        fc.string({ maxLength: 12 }),
        fc.boolean(),
        (addr, zone, before) => {
          const s = before ? `%${zone}${addr}` : `${addr}%${zone}`;
          expect(parseIp(s)).toBeNull();
        },
      ),
      opts,
    );
  });

  it('refuses surrounding white space and brackets', () => {
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), fc.constantFrom(' ', '\t', '\n', '\r'), (s, ws) => {
        expect(parseIp(`${ws}${s}`)).toBeNull();
        expect(parseIp(`${s}${ws}`)).toBeNull();
        expect(parseIp(`[${s}]`)).toBeNull();
      }),
      opts,
    );
  });
});

describe('parseCidr (fuzz)', () => {
  it('accepts exactly the canonical network of any address and prefix, and round-trips it', () => {
    const v4 = fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 32 }));
    const v6 = fc.tuple(
      eightWords.map((ws) => ws.map((x) => x.toString(16)).join(':')),
      fc.integer({ min: 0, max: 128 }),
    );
    fc.assert(
      fc.property(fc.oneof(v4, v6), ([addr, prefix]) => {
        const ip = parseIp(addr)!;
        // A /N of a mapped address is refused below; skip the mapped ones here.
        if (ip.version === 4 && addr.includes(':')) return;
        const net = networkOf(ip, prefix);
        const text = formatCidr(net);
        const r = parseCidr(text);
        expect(r.ok, text).toBe(true);
        if (!r.ok) return;
        expect(formatCidr(r.cidr)).toBe(text);
        expect(r.cidr.prefix).toBe(prefix);
        // The address itself, with this prefix, is refused iff host bits are set.
        const direct = parseCidr(`${addr}/${prefix}`);
        const hostBits = !sameBytes(net.bytes, ip.bytes);
        expect(direct.ok).toBe(!hostBits);
        if (hostBits) expect(direct).toEqual({ ok: false, error: 'host_bits_set' });
      }),
      opts,
    );
  });

  it('refuses prefixes out of range, with leading zeros, signs or space', () => {
    const bad = fc.oneof(
      fc.integer({ min: 33, max: 100000 }).map((n) => ({ v: 4, p: String(n) })),
      fc.integer({ min: 129, max: 100000 }).map((n) => ({ v: 6, p: String(n) })),
      fc.integer({ min: 0, max: 32 }).map((n) => ({ v: 4, p: `0${n}` })),
      fc.integer({ min: 0, max: 32 }).map((n) => ({ v: 4, p: `+${n}` })),
      fc.integer({ min: 0, max: 32 }).map((n) => ({ v: 4, p: ` ${n}` })),
      fc.integer({ min: 0, max: 32 }).map((n) => ({ v: 4, p: `0x${n.toString(16)}` })),
      fc.constant({ v: 4, p: '' }),
      fc.constant({ v: 4, p: '-1' }),
    );
    fc.assert(
      fc.property(bad, ({ v, p }) => {
        const addr = v === 4 ? '0.0.0.0' : '::';
        expect(parseCidr(`${addr}/${p}`).ok).toBe(false);
      }),
      opts,
    );
  });

  it('never throws on arbitrary strings, and anything accepted is canonical after formatting', () => {
    fc.assert(
      fc.property(fc.oneof(ipish, fc.string({ maxLength: 60 })), (s) => {
        const r = parseCidr(s);
        if (!r.ok) return;
        const again = parseCidr(formatCidr(r.cidr));
        expect(again.ok).toBe(true);
        if (again.ok) expect(formatCidr(again.cidr)).toBe(formatCidr(r.cidr));
      }),
      opts,
    );
  });
});
