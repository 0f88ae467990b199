import type { IncomingMessage } from 'node:http';
import { type ClientIpPolicy, resolveClientIp } from '../../proxy/client-ip';
import { scanRequestHead } from '../../proxy/request-head';

/**
 * The admin caller's IP as the proxy would determine it (the trusted
 * proxy's header, else the peer): what lockout counts and the audit trail
 * records.
 */
export class CallerIpResolver {
  constructor(private readonly policy: ClientIpPolicy) {}

  resolve(raw: IncomingMessage): string | null {
    const head = scanRequestHead(raw.rawHeaders, this.policy.header);
    const r = resolveClientIp(raw.socket.remoteAddress, head.ipHeaderLines, this.policy);
    if (r.ok) return r.text;
    const peer = resolveClientIp(raw.socket.remoteAddress, [], { trusted: [], header: this.policy.header });
    return peer.ok ? peer.text : null;
  }
}
