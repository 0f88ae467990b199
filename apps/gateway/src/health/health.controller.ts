import { Controller, Get, Header, HttpCode, Inject, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { errorBody } from '@keypin/shared';
import { ApiExcludeController } from '@nestjs/swagger';
import { Public } from '../admin/common/roles';
import { MetricsService } from '../infra/metrics/metrics.service';
import { ReadinessProbe } from './readiness';

/** Health, readiness and metrics: no token (nginx keeps /metrics internal). */
@Public()
@ApiExcludeController()
@Controller()
export class HealthController {
  constructor(
    @Inject(ReadinessProbe) private readonly readiness: ReadinessProbe,
    @Inject(MetricsService) private readonly metrics: MetricsService,
  ) {}

  @Get('health')
  @HttpCode(200)
  health(): { status: 'ok' } {
    return { status: 'ok' };
  }

  @Get('ready')
  async ready(@Res() reply: FastifyReply): Promise<void> {
    const checks = await this.readiness.check();
    const degraded = this.readiness.degraded();
    const down = Object.entries(checks)
      .filter(([, state]) => state !== 'ok')
      .map(([name]) => name);
    if (down.length === 0) {
      await reply
        .status(200)
        .send({ status: 'ready', checks, degraded, redis_topology: this.readiness.topology });
      return;
    }
    const body = errorBody('not_ready', `Not ready: ${down.join(' and ')} not answering.`);
    await reply.status(503).send({ ...body, checks, degraded, redis_topology: this.readiness.topology });
  }

  @Get('metrics')
  @Header('content-type', 'text/plain; version=0.0.4; charset=utf-8')
  async metricsText(): Promise<string> {
    return this.metrics.render();
  }
}
