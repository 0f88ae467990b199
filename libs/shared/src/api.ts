/**
 * The admin API's request and response shapes (docs/contract.md 4), shared by the
 * gateway (which serves them) and the console (which calls them).
 */
import type { KeyPolicy } from './policy';
import type { AlertWebhookFormat, BindingStatus, InterceptReason, RuleType, Settings } from './settings';

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
  /**
   * The record's place in the intercept hash chain (docs/contract.md 11,
   * docs/integrity.md): null until the record is sealed, a few seconds
   * after it was written. Always sent by the gateway; optional here only so
   * older fixtures still compile.
   */
  seq?: number | null;
  /** hex(SHA-256(prev_hash + "\n" + canonical JSON of the record)); null until sealed. */
  hash?: string | null;
  /** The previous record's hash (64 zeros before the first); null until sealed. */
  prev_hash?: string | null;
  /** False in monitor mode: recorded, but the request was forwarded (part of the hashed record). */
  enforced?: boolean;
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
  // docs/contract.md 11: the hash chain (empty until sealed), and the mode, which the hash covers.
  'seq',
  'hash',
  'prev_hash',
  'enforced',
] as const;

export type AlertDeliveryStatus = 'pending' | 'delivered' | 'failed';

/**
 * What was done about an alert (docs/contract.md 11, docs/alerts.md): `open`
 * until an admin allows one of its networks, bans the key or dismisses it.
 */
export type AlertStatus = 'open' | 'allowed' | 'banned' | 'dismissed';
export const ALERT_STATUSES: readonly AlertStatus[] = ['open', 'allowed', 'banned', 'dismissed'];

/** The actions on an open alert: `POST /alerts/:id/<action>`. */
export type AlertAction = 'allow-network' | 'ban' | 'dismiss';

export interface Alert {
  id: string;
  binding_id: number;
  token_display: string;
  allowed_ips: string[];
  attempt_ips: string[];
  /**
   * The networks the attempts came from: each attempted IP's network under
   * the binding prefixes in force when the alert was raised (canonical CIDRs,
   * first seen first). `allow-network` takes one of these.
   */
  attempt_networks: string[];
  status: AlertStatus;
  /** Who moved the alert from `open` (null while open, and when AUTO_BAN banned the key). */
  acted_by: string | null;
  acted_at: string | null;
  /** The network an `allowed` alert added to the binding. */
  allowed_network: string | null;
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

export interface AlertListQuery extends PageQuery {
  binding_id?: number;
  status?: AlertStatus;
}

/** `POST /alerts/:id/allow-network`: one of the alert's `attempt_networks`. */
export interface AllowAlertNetworkRequest {
  network: string;
}

/** The answer to an alert action: the alert as it is now, and its binding (null for a dismissal). */
export interface AlertActionResult {
  alert: Alert;
  binding: Binding | null;
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

/**
 * `POST /settings/test-alert` (docs/alert-formats.md): one sample alert sent
 * once, without retries, through the saved format and webhook URL, and what
 * the receiver answered.
 */
export interface TestAlertResult {
  format: AlertWebhookFormat;
  /** Judged as a real alert's delivery would be (an error inside a 200 is not delivered). */
  delivered: boolean;
  /** The receiver's HTTP status; null when no answer came (timeout, connection refused). */
  status: number | null;
  /** The start of the receiver's answer (at most `TEST_ALERT_BODY_LIMIT` characters). */
  body: string;
  body_truncated: boolean;
  /** Why it does not count as delivered; null when it does. */
  error: string | null;
  /** Whether a real alert's delivery would try again after this answer. */
  would_retry: boolean;
  duration_ms: number;
}

/** How much of the receiver's answer `POST /settings/test-alert` shows. */
export const TEST_ALERT_BODY_LIMIT = 2000;

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
  /** The entry's place in the audit hash chain (docs/integrity.md); null until sealed. */
  seq?: number | null;
  hash?: string | null;
}

/** One hash chain's state as `GET /integrity` recomputed it (docs/contract.md 11, docs/integrity.md). */
export interface ChainState {
  /** Every sealed record from the latest checkpoint to the head verified. */
  ok: boolean;
  /** Records verified before the first failure (all of them when ok). */
  checked: number;
  /** The last seq the sealer assigned and its hash (0 and 64 zeros for an empty chain). */
  head_seq: number;
  head_hash: string;
  /** The first seq that fails (changed, missing or inserted record); null when ok. */
  first_bad_seq: number | null;
  /** Where verification started: the seq of the latest checkpoint (records up to it were removed); null: from seq 1. */
  checkpoint_seq: number | null;
  /** Records written but not sealed yet (the sealer takes them within seconds). */
  unsealed: number;
}

/** `GET /integrity`. */
export interface IntegrityReport {
  intercepts: ChainState;
  audit: ChainState;
  /** When the verification finished (ISO-8601). */
  checked_at: string;
}

export const MIN_PASSWORD_LENGTH = 12;
export const USERNAME_PATTERN = /^[A-Za-z0-9_.@-]{1,64}$/;
