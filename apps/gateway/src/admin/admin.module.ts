import { type DynamicModule, type Type, Module } from '@nestjs/common';
import { APP_GUARD, APP_PIPE } from '@nestjs/core';
import type { AdminServices } from './admin-services';
import { AuditController } from '../audit/audit.controller';
import { AdminAuthGuard } from '../user/auth.guard';
import { AuthController } from '../user/auth.controller';
import { createValidationPipe } from './common/validation';
import { UsersController } from '../user/users.controller';
import { AlertsController } from '../alert/alerts.controller';
import { BindingsController } from '../binding/bindings.controller';
import { DashboardController } from '../dashboard/dashboard.controller';
import { LogsController } from '../intercept/logs.controller';
import { IntegrityController } from '../integrity/integrity.controller';
import { RoutesController } from '../route/routes.controller';
import { SettingsController } from '../settings/settings.controller';

/** Every admin API controller; the OpenAPI document covers exactly these. */
export const ADMIN_CONTROLLERS: Type[] = [
  AuthController,
  DashboardController,
  BindingsController,
  LogsController,
  IntegrityController,
  AlertsController,
  SettingsController,
  RoutesController,
  UsersController,
  AuditController,
];

@Module({})
export class AdminModule {
  /** `services`: the admin services built once by the composition root, one provider each. */
  static forServices(services: AdminServices): DynamicModule {
    return {
      module: AdminModule,
      controllers: ADMIN_CONTROLLERS,
      providers: [
        ...Object.values(services).map((s: object) => ({ provide: s.constructor, useValue: s })),
        { provide: APP_GUARD, useClass: AdminAuthGuard },
        { provide: APP_PIPE, useFactory: createValidationPipe },
      ],
    };
  }
}
