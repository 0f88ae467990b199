import { anyCidrContains, type Cidr, type IpAddress, parseCidr } from '@keypin/shared';

/**
 * A list of networks in the form the hot path tests fastest: IPv4 as flat
 * [network, mask, …] signed 32-bit integers (small integers in V8: no heap
 * numbers, compact in a cache of 100k bindings), IPv6 as parsed CIDRs.
 */
export interface NetList {
  readonly v4: readonly number[];
  readonly v6: readonly Cidr[];
}

const NO_V6: readonly Cidr[] = Object.freeze([]);
const NO_V4: readonly number[] = Object.freeze([]);

/** An empty list (shared: nothing to allocate). */
export const EMPTY_NET_LIST: NetList = Object.freeze({ v4: NO_V4, v6: NO_V6 });

/** Builds the list from CIDR texts; entries that do not parse (never written by KeyPin) are ignored. */
export function toNetList(texts: readonly string[]): NetList {
  let v4: number[] | null = null;
  let v6: Cidr[] | null = null;
  for (const text of texts) {
    const r = parseCidr(text);
    if (!r.ok) continue;
    const c = r.cidr;
    if (c.version === 6) {
      (v6 ??= []).push(c);
      continue;
    }
    const b = c.bytes;
    const mask = c.prefix === 0 ? 0 : -1 << (32 - c.prefix);
    (v4 ??= []).push(((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) & mask, mask);
  }
  if (v4 === null && v6 === null) return EMPTY_NET_LIST;
  return { v4: v4 ?? NO_V4, v6: v6 ?? NO_V6 };
}

/** Whether `ip` is inside any network of the list. Allocation-free. */
export function netListContains(list: NetList, ip: IpAddress): boolean {
  if (ip.version === 6) return list.v6.length > 0 && anyCidrContains(list.v6, ip);
  const b = ip.bytes;
  const n = (b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!;
  const v4 = list.v4;
  for (let i = 0; i < v4.length; i += 2) {
    if ((n & v4[i + 1]!) === v4[i]) return true;
  }
  return false;
}

/** Whether the list holds no network at all. */
export function isEmptyNetList(list: NetList): boolean {
  return list.v4.length === 0 && list.v6.length === 0;
}
