import { anyCidrContains, type Cidr, formatIp, type IpAddress, parseIp } from '@keypin/shared';

export type ClientIpResult = { ok: true; ip: IpAddress; text: string } | { ok: false; message: string };

export interface ClientIpPolicy {
  trusted: readonly Cidr[];
  header: 'x-real-ip' | 'x-forwarded-for';
}

function ok(ip: IpAddress, source: string): ClientIpResult {
  // An IPv4 that parsed without ':' is already in canonical text.
  return { ok: true, ip, text: ip.version === 4 && source.indexOf(':') === -1 ? source : formatIp(ip) };
}

/**
 * The client's address (docs/contract.md 2.2): the TCP peer, unless the peer is a
 * trusted proxy; then REAL_IP_HEADER, which must be present exactly once and
 * hold valid addresses. `x-forwarded-for` is walked from the right, skipping
 * trusted addresses; the first untrusted one is the client (the leftmost one
 * when every entry is trusted).
 */
export function resolveClientIp(
  peer: string | undefined,
  headerLines: readonly string[],
  policy: ClientIpPolicy,
): ClientIpResult {
  const peerIp = peer === undefined ? null : parseIp(peer);
  if (peerIp === null) return { ok: false, message: 'The connection has no usable peer address.' };
  if (policy.trusted.length === 0 || !anyCidrContains(policy.trusted, peerIp)) return ok(peerIp, peer!);

  const name = policy.header;
  if (headerLines.length === 0) {
    return {
      ok: false,
      message: `Requests from a trusted proxy (${peer}) must carry the ${name} header; see TRUSTED_PROXIES.`,
    };
  }
  if (headerLines.length > 1) {
    return { ok: false, message: `The ${name} header was sent more than once.` };
  }
  const value = headerLines[0]!.trim();
  if (value === '') return { ok: false, message: `The ${name} header is empty.` };

  if (name === 'x-real-ip') {
    const ip = parseIp(value);
    if (ip === null) return { ok: false, message: `The ${name} header is not a single valid IP address.` };
    return ok(ip, value);
  }

  const parts = value.split(',');
  let leftmost: ClientIpResult | null = null;
  for (let i = parts.length - 1; i >= 0; i--) {
    const text = parts[i]!.trim();
    const ip = parseIp(text);
    if (ip === null) {
      return { ok: false, message: `The ${name} header holds an entry that is not a valid IP address.` };
    }
    if (!anyCidrContains(policy.trusted, ip)) return ok(ip, text);
    leftmost = ok(ip, text);
  }
  return leftmost!;
}
