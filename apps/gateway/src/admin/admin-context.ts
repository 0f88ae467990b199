import type { IncomingMessage } from 'node:http';
import { resolveClientIp, type ClientIpPolicy } from '../proxy/client-ip';
import { scanRequestHead } from '../proxy/request-head';
import type { Runtime } from '../runtime';
import type { AuditRepository } from '../audit/audit.repository';
import type { AuthService } from '../user/auth.service';
import type { UsersRepository } from '../user/users.repository';

/**
 * The admin API's services, built once from the runtime and handed to the
 * controllers (one injectable instead of a provider per service).
 */
export class AdminContext {
  constructor(
    readonly rt: Runtime,
    readonly auth: AuthService,
    readonly users: UsersRepository,
    readonly audit: AuditRepository,
    private readonly policy: ClientIpPolicy,
  ) {}

  /** The caller's IP as the proxy would determine it (trusted proxy header, else the peer). */
  callerIp(raw: IncomingMessage): string | null {
    const head = scanRequestHead(raw.rawHeaders, this.policy.header);
    const r = resolveClientIp(raw.socket.remoteAddress, head.ipHeaderLines, this.policy);
    if (r.ok) return r.text;
    const peer = resolveClientIp(raw.socket.remoteAddress, [], { trusted: [], header: this.policy.header });
    return peer.ok ? peer.text : null;
  }
}
