import type { AlertAdminService } from '../alert/alert-admin.service';
import type { AuditRepository } from '../audit/audit.repository';
import type { BindingAdminService } from '../binding/binding-admin.service';
import type { DashboardService } from '../dashboard/dashboard.service';
import type { InterceptLogService } from '../intercept/intercept-log.service';
import type { IntegrityService } from '../integrity/integrity.service';
import type { RouteAdminService } from '../route/route-admin.service';
import type { SettingsAdminService } from '../settings/settings-admin.service';
import type { AuthService } from '../user/auth.service';
import type { UsersService } from '../user/users.service';
import type { CallerIpResolver } from './common/caller-ip';

/**
 * What the admin API's controllers and guard receive: one instance of
 * each, built by the composition root (`runtime.ts`, createAdminServices)
 * and registered as a Nest provider under its own class.
 */
export interface AdminServices {
  auth: AuthService;
  callerIp: CallerIpResolver;
  users: UsersService;
  audit: AuditRepository;
  bindings: BindingAdminService;
  settings: SettingsAdminService;
  routes: RouteAdminService;
  logs: InterceptLogService;
  integrity: IntegrityService;
  dashboard: DashboardService;
  alerts: AlertAdminService;
}
