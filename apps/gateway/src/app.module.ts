import { type DynamicModule, Module } from '@nestjs/common';
import { AdminModule } from './admin/admin.module';
import type { AdminServices } from './admin/admin-services';
import { APP_FILTER } from '@nestjs/core';
import { HealthController } from './health/health.controller';
import { ReadinessProbe } from './health/readiness';
import { AllExceptionsFilter } from './infra/http/all-exceptions.filter';
import { MetricsService } from './infra/metrics/metrics.service';
import type { Logger } from 'pino';

/** What the app module itself serves (health, metrics, the error filter). */
export interface CoreServices {
  metrics: MetricsService;
  readiness: ReadinessProbe;
  logger: Logger;
}

@Module({})
export class AppModule {
  static forServices(core: CoreServices, admin: AdminServices): DynamicModule {
    return {
      module: AppModule,
      global: true,
      imports: [AdminModule.forServices(admin)],
      controllers: [HealthController],
      providers: [
        { provide: MetricsService, useValue: core.metrics },
        { provide: ReadinessProbe, useValue: core.readiness },
        { provide: APP_FILTER, useValue: new AllExceptionsFilter(core.logger) },
      ],
      exports: [MetricsService, ReadinessProbe],
    };
  }
}
