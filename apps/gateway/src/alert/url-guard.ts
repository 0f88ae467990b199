import { lookup as dnsLookup } from 'node:dns';
import type { LookupAddress } from 'node:dns';
import { anyCidrContains, type Cidr, type IpAddress, parseCidr, parseIp } from '@keypin/shared';

/**
 * Destinations a webhook must not reach unless the operator allows it
 * (ALERT_WEBHOOK_ALLOW_PRIVATE): loopback, private, link-local, shared
 * (CGNAT), unspecified, multicast, reserved and documentation ranges, and the
 * IPv6 forms that embed IPv4 (NAT64, 6to4).
 */
const BLOCKED: readonly Cidr[] = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.0.0.0/24',
  '192.0.2.0/24',
  '192.88.99.0/24',
  '192.168.0.0/16',
  '198.18.0.0/15',
  '198.51.100.0/24',
  '203.0.113.0/24',
  '224.0.0.0/4',
  '240.0.0.0/4',
  '::/128',
  '::1/128',
  '::/96',
  '64:ff9b::/96',
  '64:ff9b:1::/48',
  '100::/64',
  '2001::/23',
  '2001:db8::/32',
  '2002::/16',
  'fc00::/7',
  'fe80::/10',
  'fec0::/10',
  'ff00::/8',
].map((s) => {
  const r = parseCidr(s);
  if (!r.ok) throw new Error(`bad built-in range ${s}`);
  return r.cidr;
});

export function isPublicAddress(ip: IpAddress): boolean {
  return !anyCidrContains(BLOCKED, ip);
}

export class UnsafeUrlError extends Error {}

/**
 * Checks a webhook URL's shape: http(s), a host, no credentials. Returns the
 * literal address when the host is one.
 */
export function checkWebhookUrl(url: string, allowPrivate: boolean): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UnsafeUrlError('the webhook URL is not a valid URL');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new UnsafeUrlError('the webhook URL must use http or https');
  }
  if (u.username !== '' || u.password !== '')
    throw new UnsafeUrlError('the webhook URL must not carry credentials');
  const literal = parseIp(u.hostname.replace(/^\[|\]$/g, ''));
  if (literal !== null && !allowPrivate && !isPublicAddress(literal)) {
    throw new UnsafeUrlError('the webhook URL points at a private, loopback or link-local address');
  }
  return u;
}

type LookupCallback = (
  err: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

/**
 * A `lookup` for the webhook socket: resolves the name and refuses it when
 * any address it resolves to is not public (so a DNS answer cannot steer
 * the request inside), then connects to the checked address.
 */
export function guardedLookup(allowPrivate: boolean) {
  return (hostname: string, options: { all?: boolean }, callback: LookupCallback): void => {
    dnsLookup(hostname, { all: true }, (err, addresses) => {
      if (err) return callback(err, []);
      for (const a of addresses) {
        const ip = parseIp(a.address);
        if (ip === null || (!allowPrivate && !isPublicAddress(ip))) {
          const e: NodeJS.ErrnoException = new UnsafeUrlError(
            `the webhook host ${hostname} resolves to a private, loopback or link-local address`,
          );
          e.code = 'EUNSAFEADDRESS';
          return callback(e, []);
        }
      }
      if (options.all) return callback(null, addresses);
      const first = addresses[0];
      if (!first)
        return callback(Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' }), []);
      callback(null, first.address, first.family);
    });
  };
}
