import { Body, Controller, Get, HttpCode, Inject, Post, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { LoginResponse, Me } from '@keypin/shared';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { KeypinError } from '../infra/http/all-exceptions.filter';
import { CallerIpResolver } from '../admin/common/caller-ip';
import { AuthService } from './auth.service';
import { CurrentCaller } from '../admin/common/caller.decorator';
import { type Caller, Public } from '../admin/common/roles';
import { LoginDto } from './dto/auth.dto';

@ApiTags('auth')
@Controller('admin/api')
export class AuthController {
  constructor(
    @Inject(AuthService) private readonly auth: AuthService,
    @Inject(CallerIpResolver) private readonly callerIp: CallerIpResolver,
  ) {}

  @Public()
  @Post('login')
  @HttpCode(200)
  @ApiOperation({ summary: 'Log in: a short-lived admin JWT' })
  async login(
    @Body() body: LoginDto,
    @Req() req: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<LoginResponse> {
    const ip = this.callerIp.resolve(req.raw) ?? '0.0.0.0';
    try {
      return await this.auth.login(body.username, body.password, ip);
    } catch (err) {
      if (err instanceof KeypinError && err.code === 'too_many_attempts') {
        const retryAfter = Number(err.extra?.['retry_after'] ?? 900);
        void reply.header('retry-after', String(retryAfter));
      }
      throw err;
    }
  }

  @Get('me')
  @ApiBearerAuth()
  @ApiOperation({ summary: 'Who the token belongs to' })
  me(@CurrentCaller() caller: Caller): Me {
    return { username: caller.username, role: caller.role };
  }
}
