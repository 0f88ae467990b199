import { type CanActivate, type ExecutionContext, Inject, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyRequest } from 'fastify';
import { KeypinError } from '../infra/http/all-exceptions.filter';
import { CALLER_KEY } from '../admin/common/caller.decorator';
import { PUBLIC_ROUTE, REQUIRED_ROLE } from '../admin/common/roles';
import { CallerIpResolver } from '../admin/common/caller-ip';
import { AuthService } from './auth.service';

const READ_METHODS = new Set(['GET', 'HEAD']);

/**
 * Deny by default: every Nest route needs a valid admin token unless it is
 * marked @Public(). Roles are checked here and nowhere else: reads are open
 * to `auditor` and `admin`, changes (and @AdminOnly routes) need `admin`.
 */
@Injectable()
export class AdminAuthGuard implements CanActivate {
  constructor(
    @Inject(Reflector) private readonly reflector: Reflector,
    @Inject(AuthService) private readonly auth: AuthService,
    @Inject(CallerIpResolver) private readonly callerIp: CallerIpResolver,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC_ROUTE, targets)) return true;
    const req = context.switchToHttp().getRequest<FastifyRequest>();
    const header = req.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer ([A-Za-z0-9._~+/=-]+)$/i.exec(header.trim()) : null;
    if (!match) throw new KeypinError('unauthorized', 'Log in first: send Authorization: Bearer <token>.');
    const caller = await this.auth.authenticate(match[1]!, this.callerIp.resolve(req.raw));
    const adminOnly = this.reflector.getAllAndOverride<string>(REQUIRED_ROLE, targets) === 'admin';
    if ((adminOnly || !READ_METHODS.has(req.method)) && caller.role !== 'admin') {
      throw new KeypinError('forbidden', 'Your role may not do this.');
    }
    (req.raw as unknown as Record<string, unknown>)[CALLER_KEY] = caller;
    return true;
  }
}
