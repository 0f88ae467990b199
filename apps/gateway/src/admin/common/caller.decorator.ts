import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import type { Caller } from './roles';

export const CALLER_KEY = 'keypinCaller';

/** Injects the authenticated caller (`@CurrentCaller() caller: Caller`). */
export const CurrentCaller = createParamDecorator((_data: unknown, ctx: ExecutionContext): Caller => {
  const req = ctx.switchToHttp().getRequest<{ raw: Record<string, unknown> }>();
  return req.raw[CALLER_KEY] as Caller;
});
