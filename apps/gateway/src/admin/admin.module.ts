import { type DynamicModule, type Type, Module } from '@nestjs/common';
import { APP_GUARD, APP_PIPE } from '@nestjs/core';
import type { Runtime } from '../runtime';
import { AdminContext } from './admin-context';
import { AuditController } from '../audit/audit.controller';
import { AuditRepository } from '../audit/audit.repository';
import { AdminAuthGuard } from '../user/auth.guard';
import { AuthController } from '../user/auth.controller';
import { AuthService } from '../user/auth.service';
import { LockoutRepository } from '../user/lockout.repository';
import { createValidationPipe } from './common/validation';
import { UsersController } from '../user/users.controller';
import { AlertsController } from './alerts/alerts.controller';
import { BindingsController } from '../binding/bindings.controller';
import { DashboardController } from './dashboard/dashboard.controller';
import { LogsController } from './logs/logs.controller';
import { SettingsController } from '../settings/settings.controller';
import { UsersRepository } from '../user/users.repository';

/** Every admin API controller; the OpenAPI document covers exactly these. */
export const ADMIN_CONTROLLERS: Type[] = [
  AuthController,
  DashboardController,
  BindingsController,
  LogsController,
  AlertsController,
  SettingsController,
  UsersController,
  AuditController,
];

export function createAdminContext(rt: Runtime): AdminContext {
  const users = new UsersRepository(rt.dataSource);
  const lockout = new LockoutRepository(rt.dataSource, rt.redis, rt.keys);
  const auth = new AuthService(
    users,
    lockout,
    rt.config.adminJwtSecret.reveal(),
    rt.config.adminJwtTtlSeconds,
    rt.logger,
  );
  return new AdminContext(rt, auth, users, new AuditRepository(rt.dataSource), {
    trusted: rt.config.trustedProxies,
    header: rt.config.realIpHeader,
  });
}

@Module({})
export class AdminModule {
  static forContext(ctx: AdminContext): DynamicModule {
    return {
      module: AdminModule,
      controllers: ADMIN_CONTROLLERS,
      providers: [
        { provide: AdminContext, useValue: ctx },
        { provide: APP_GUARD, useClass: AdminAuthGuard },
        { provide: APP_PIPE, useFactory: createValidationPipe },
      ],
    };
  }
}
