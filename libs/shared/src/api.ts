/**
 * The admin API's request and response shapes (docs/contract.md 4), shared by the
 * gateway (which serves them) and the console (which calls them).
 */
import type { KeyPolicy } from './policy';
import type { BindingStatus, InterceptReason, RuleType, Settings } from './settings';

export type Role = 'admin' | 'auditor';
export const ROLES: readonly Role[] = ['admin', 'auditor'];

export interface Page<T> {
  items: T[];
  total: number;
  page: number;
  page_size: number;
}

export interface PageQuery {
  page?: number;
  page_size?: number;
}

export const DEFAULT_PAGE_SIZE = 20;
export const MAX_PAGE_SIZE = 200;
/** Longest `search` text any list accepts (a full raw key at most: MAX_KEY_LENGTH). */
export const MAX_SEARCH_LENGTH = 4096;

export interface LoginRequest {
  username: string;
  password: string;
}

export interface LoginResponse {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  role: Role;
}

export interface Me {
  username: string;
  role: Role;
}

export interface Binding {
  id: number;
  token_display: string;
  rule_type: RuleType;
  allowed_ips: string[];
  status: BindingStatus;
  first_ip: string | null;
  first_used_at: string | null;
  last_ip: string | null;
  last_used_at: string | null;
  request_count: number;
  intercept_count: number;
  note: string | null;
  created_at: string;
  updated_at: string;
  /** The key's own policy (docs/contract.md 9); null = the default policy applies. */
  policy: KeyPolicy | null;
  /** Requests forwarded today (UTC), written in batches like `request_count`. */
  requests_today: number;
}

export interface BindingListQuery extends PageQuery {
  search?: string;
  status?: BindingStatus;
  rule_type?: RuleType;
}

export interface CreateBindingRequest {
  key: string;
  rule_type: RuleType;
  allowed_ips: string[];
  note?: string | null;
}

export interface UpdateBindingIpRequest {
  id: number;
  rule_type: RuleType;
  allowed_ips: string[];
}

export interface BindingIdRequest {
  id: number;
}

export interface Intercept {
  id: string;
  /** null: refused by the network policy before the key had a binding (docs/contract.md 10). */
  binding_id: number | null;
  token_display: string;
  attempt_ip: string;
  allowed_ips: string[];
  reason: InterceptReason;
  method: string;
  path: string;
  user_agent: string | null;
  alerted: boolean;
  intercepted_at: string;
  /** Refused requests this record stands for (one key, one IP, one reason, within one second); 1 otherwise. */
  count: number;
}

export interface InterceptListQuery extends PageQuery {
  binding_id?: number;
  search?: string;
  ip?: string;
  reason?: InterceptReason;
  from?: string;
  to?: string;
}

export const CSV_HEADER = [
  'intercepted_at',
  'token_display',
  'attempt_ip',
  'allowed_ips',
  'reason',
  'method',
  'path',
  'user_agent',
  'alerted',
  'binding_id',
  'id',
  'count',
] as const;

export type AlertDeliveryStatus = 'pending' | 'delivered' | 'failed';

export interface Alert {
  id: string;
  binding_id: number;
  token_display: string;
  allowed_ips: string[];
  attempt_ips: string[];
  count: number;
  window_seconds: number;
  first_at: string;
  last_at: string;
  occurred_at: string;
  auto_banned: boolean;
  delivery_status: AlertDeliveryStatus;
  attempts: number;
  last_error: string | null;
  last_attempt_at: string | null;
  delivered_at: string | null;
}

export interface DashboardDay {
  date: string;
  allowed: number;
  intercepted: number;
}

export interface Dashboard {
  today: { allowed: number; intercepted: number; first_binds: number };
  bindings: { active: number; banned: number };
  series: DashboardDay[];
  top_intercepted: { binding_id: number; token_display: string; count: number }[];
  recent_intercepts: Intercept[];
  /** Today's (UTC) refused requests by error code, most first (policy refusals included). */
  refusals: { code: string; count: number }[];
}

/** `GET /settings`: the settings object; the webhook secret is never returned, only whether one is set. */
export interface SettingsResponse extends Settings {
  alert_webhook_secret_set: boolean;
}

/** `PUT /settings`: any subset; `alert_webhook_secret` is write-only (null clears it). */
export type SettingsUpdate = Partial<Settings> & { alert_webhook_secret?: string | null };

export interface AdminUser {
  id: number;
  username: string;
  role: Role;
  created_at: string;
  updated_at: string;
}

export interface CreateUserRequest {
  username: string;
  password: string;
  role: Role;
}

export interface ChangePasswordRequest {
  password: string;
}

export interface AuditEntry {
  id: number;
  actor: string;
  action: string;
  target: string | null;
  before: unknown;
  after: unknown;
  ip: string | null;
  at: string;
}

export const MIN_PASSWORD_LENGTH = 12;
export const USERNAME_PATTERN = /^[A-Za-z0-9_.@-]{1,64}$/;
