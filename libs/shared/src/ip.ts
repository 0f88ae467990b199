/**
 * Strict IP and CIDR parsing and matching, shared by the gateway (hot path)
 * and the console (form validation). Pure functions, no Node built-ins.
 *
 * Rules (see docs/contract.md 2.2; why each one, in SECURITY.md "A spoofed client IP"):
 * - IPv4 is accepted only as four decimal parts without leading zeros
 *   (`010.0.0.1`, `0x7f.1`, `2130706433`, `127.1` are refused: inet_aton
 *   spellings mean different addresses to different parsers).
 * - IPv6 is parsed to its 128-bit value, so every spelling (compressed,
 *   upper case) compares equal; zone ids (`fe80::1%eth0`) are refused.
 * - IPv4-mapped IPv6 (`::ffff:1.2.3.4`) is folded to the IPv4 address.
 */

export type IpVersion = 4 | 6;

export interface IpAddress {
  readonly version: IpVersion;
  /** 4 bytes for IPv4, 16 for IPv6, network order. */
  readonly bytes: Uint8Array;
}

export interface Cidr {
  readonly version: IpVersion;
  /** The network address: host bits are always zero. */
  readonly bytes: Uint8Array;
  readonly prefix: number;
}

const DIGIT_0 = 48;
const DIGIT_9 = 57;

function parseIpv4Into(s: string, start: number, end: number, out: Uint8Array, offset: number): boolean {
  let part = 0;
  let value = 0;
  let digits = 0;
  let leadingZero = false;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c >= DIGIT_0 && c <= DIGIT_9) {
      if (digits === 0) leadingZero = c === DIGIT_0;
      else if (leadingZero) return false;
      digits++;
      if (digits > 3) return false;
      value = value * 10 + (c - DIGIT_0);
    } else if (c === 46 /* . */) {
      if (digits === 0 || value > 255 || part === 3) return false;
      out[offset + part] = value;
      part++;
      value = 0;
      digits = 0;
      leadingZero = false;
    } else {
      return false;
    }
  }
  if (part !== 3 || digits === 0 || value > 255) return false;
  out[offset + 3] = value;
  return true;
}

function hexValue(c: number): number {
  if (c >= DIGIT_0 && c <= DIGIT_9) return c - DIGIT_0;
  if (c >= 97 && c <= 102) return c - 87; // a-f
  if (c >= 65 && c <= 70) return c - 55; // A-F
  return -1;
}

/** Parses an IPv6 address (no zone id) into 16 bytes, or returns null. */
function parseIpv6(s: string): Uint8Array | null {
  const len = s.length;
  if (len < 2 || len > 45) return null;
  const bytes = new Uint8Array(16);
  let groups = 0; // 16-bit groups written so far
  let gap = -1; // index (in groups) of the "::"
  let i = 0;
  if (s.charCodeAt(0) === 58 /* : */) {
    if (s.charCodeAt(1) !== 58) return null;
    gap = 0;
    i = 2;
    if (i === len) return bytes; // "::"
  }
  while (i < len) {
    if (groups === 8) return null;
    // Find the end of this group.
    let j = i;
    let value = 0;
    while (j < len) {
      const h = hexValue(s.charCodeAt(j));
      if (h < 0) break;
      value = value * 16 + h;
      j++;
    }
    const digits = j - i;
    if (j < len && s.charCodeAt(j) === 46 /* . */) {
      // Embedded IPv4 in the last 32 bits.
      if (groups > 6) return null;
      if (!parseIpv4Into(s, i, len, bytes, groups * 2)) return null;
      groups += 2;
      i = len;
      break;
    }
    if (digits === 0 || digits > 4) return null;
    bytes[groups * 2] = value >> 8;
    bytes[groups * 2 + 1] = value & 0xff;
    groups++;
    if (j === len) {
      i = len;
      break;
    }
    if (s.charCodeAt(j) !== 58 /* : */) return null; // includes '%' (zone id)
    j++;
    if (j < len && s.charCodeAt(j) === 58) {
      if (gap !== -1) return null; // a second "::"
      gap = groups;
      j++;
      if (j === len) {
        i = len;
        break;
      }
    } else if (j === len) {
      return null; // trailing single ':'
    }
    i = j;
  }
  if (gap === -1) {
    return groups === 8 ? bytes : null;
  }
  if (groups === 8) return null; // "::" must stand for at least one group
  // Move the groups after the gap to the end.
  const tail = (groups - gap) * 2;
  const shift = 16 - groups * 2;
  for (let k = tail - 1; k >= 0; k--) {
    bytes[gap * 2 + shift + k] = bytes[gap * 2 + k]!;
    bytes[gap * 2 + k] = 0;
  }
  return bytes;
}

function isV4Mapped(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

/**
 * Parses one IP address strictly. IPv4-mapped IPv6 becomes IPv4.
 * Returns null for anything else (including surrounding space and zone ids).
 */
export function parseIp(s: string): IpAddress | null {
  if (s.indexOf(':') === -1) {
    const bytes = new Uint8Array(4);
    return parseIpv4Into(s, 0, s.length, bytes, 0) ? { version: 4, bytes } : null;
  }
  const b6 = parseIpv6(s);
  if (b6 === null) return null;
  if (isV4Mapped(b6)) return { version: 4, bytes: b6.slice(12) };
  return { version: 6, bytes: b6 };
}

export function isIp(s: string): boolean {
  return parseIp(s) !== null;
}

/** Canonical text: dotted decimal for IPv4, RFC 5952 for IPv6. */
export function formatIp(ip: { version: IpVersion; bytes: Uint8Array }): string {
  const b = ip.bytes;
  if (ip.version === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((b[i]! << 8) | b[i + 1]!);
  // Longest run of zero words (length >= 2), first one on ties.
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number) =>
    words
      .slice(from, to)
      .map((w) => w.toString(16))
      .join(':');
  if (bestStart === -1) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLen, 8)}`;
}

/** The canonical form of an address string, or null when it does not parse. */
export function canonicalIp(s: string): string | null {
  const ip = parseIp(s);
  return ip === null ? null : formatIp(ip);
}

export function maxPrefix(version: IpVersion): number {
  return version === 4 ? 32 : 128;
}

/** The network of `prefix` bits that contains `ip`. */
export function networkOf(ip: IpAddress, prefix: number): Cidr {
  const bytes = ip.bytes.slice();
  const max = maxPrefix(ip.version);
  const p = Math.max(0, Math.min(max, prefix));
  maskInPlace(bytes, p);
  return { version: ip.version, bytes, prefix: p };
}

function maskInPlace(bytes: Uint8Array, prefix: number): void {
  for (let i = 0; i < bytes.length; i++) {
    const bits = prefix - i * 8;
    if (bits >= 8) continue;
    bytes[i] = bits <= 0 ? 0 : bytes[i]! & (0xff << (8 - bits)) & 0xff;
  }
}

function hostBitsZero(bytes: Uint8Array, prefix: number): boolean {
  for (let i = 0; i < bytes.length; i++) {
    const bits = prefix - i * 8;
    if (bits >= 8) continue;
    const mask = bits <= 0 ? 0 : (0xff << (8 - bits)) & 0xff;
    if ((bytes[i]! & ~mask & 0xff) !== 0) return false;
  }
  return true;
}

export type CidrParseError = 'not_an_address' | 'bad_prefix' | 'host_bits_set' | 'mapped_ipv6';

export type CidrParseResult = { ok: true; cidr: Cidr } | { ok: false; error: CidrParseError };

const PREFIX_RE = /^(0|[1-9][0-9]{0,2})$/;

/**
 * Parses `addr` or `addr/prefix`. A bare address means the exact address
 * (/32 or /128). Strict: host bits must be zero (`10.0.0.1/24` is refused),
 * the prefix must be decimal without leading zeros and within range, and
 * IPv4-mapped IPv6 networks must be written as IPv4.
 */
export function parseCidr(s: string): CidrParseResult {
  const slash = s.indexOf('/');
  const addrText = slash === -1 ? s : s.slice(0, slash);
  const addr = parseIp(addrText);
  if (addr === null) return { ok: false, error: 'not_an_address' };
  const max = maxPrefix(addr.version);
  let prefix = max;
  if (slash !== -1) {
    if (addr.version === 4 && addrText.indexOf(':') !== -1) return { ok: false, error: 'mapped_ipv6' };
    const prefixText = s.slice(slash + 1);
    if (!PREFIX_RE.test(prefixText)) return { ok: false, error: 'bad_prefix' };
    prefix = Number(prefixText);
    if (prefix > max) return { ok: false, error: 'bad_prefix' };
  }
  if (!hostBitsZero(addr.bytes, prefix)) return { ok: false, error: 'host_bits_set' };
  return { ok: true, cidr: { version: addr.version, bytes: addr.bytes, prefix } };
}

export function cidrErrorMessage(entry: string, error: CidrParseError): string {
  switch (error) {
    case 'not_an_address':
      return `"${entry}" is not an IP address or CIDR (IPv4 must be four decimal parts without leading zeros; no zone ids)`;
    case 'bad_prefix':
      return `"${entry}" has an invalid prefix length`;
    case 'host_bits_set':
      return `"${entry}" has host bits set; write the network address`;
    case 'mapped_ipv6':
      return `"${entry}" is an IPv4-mapped IPv6 network; write it as IPv4`;
  }
}

/** Canonical text: `a.b.c.d/p` or `v6::/p`, always with the prefix. */
export function formatCidr(c: Cidr): string {
  return `${formatIp(c)}/${c.prefix}`;
}

export function cidrContains(c: Cidr, ip: IpAddress): boolean {
  if (c.version !== ip.version) return false;
  const a = c.bytes;
  const b = ip.bytes;
  const full = c.prefix >> 3;
  for (let i = 0; i < full; i++) if (a[i] !== b[i]) return false;
  const rest = c.prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (a[full]! & mask) === (b[full]! & mask);
}

export function anyCidrContains(list: readonly Cidr[], ip: IpAddress): boolean {
  for (let i = 0; i < list.length; i++) if (cidrContains(list[i]!, ip)) return true;
  return false;
}

/**
 * Parses a comma-separated CIDR list (as in TRUSTED_PROXIES). Returns the
 * list or the first bad entry.
 */
export function parseCidrList(
  text: string,
): { ok: true; cidrs: Cidr[] } | { ok: false; entry: string; error: CidrParseError } {
  const cidrs: Cidr[] = [];
  for (const raw of text.split(',')) {
    const entry = raw.trim();
    if (entry === '') continue;
    const r = parseCidr(entry);
    if (!r.ok) return { ok: false, entry, error: r.error };
    cidrs.push(r.cidr);
  }
  return { ok: true, cidrs };
}
