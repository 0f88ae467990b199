import { type DynamicModule, Module } from '@nestjs/common';
import { AdminModule } from './admin/admin.module';
import type { AdminContext } from './admin/admin-context';
import { APP_FILTER } from '@nestjs/core';
import { HealthController } from './health/health.controller';
import { ReadinessProbe } from './health/readiness';
import { AllExceptionsFilter } from './infra/http/all-exceptions.filter';
import { MetricsService } from './infra/metrics/metrics.service';
import type { Runtime } from './runtime';
import { RUNTIME } from './runtime.token';

@Module({})
export class AppModule {
  static forRuntime(rt: Runtime, admin: AdminContext): DynamicModule {
    return {
      module: AppModule,
      global: true,
      imports: [AdminModule.forContext(admin)],
      controllers: [HealthController],
      providers: [
        { provide: RUNTIME, useValue: rt },
        { provide: MetricsService, useValue: rt.metrics },
        { provide: ReadinessProbe, useValue: rt.readiness },
        { provide: APP_FILTER, useValue: new AllExceptionsFilter(rt.logger) },
      ],
      exports: [RUNTIME, MetricsService, ReadinessProbe],
    };
  }
}
