import {
  type AdminUser,
  type Alert,
  type AlertAction,
  type AlertActionResult,
  type AlertListQuery,
  type AuditEntry,
  type Binding,
  type BindingListQuery,
  type BindingUsage,
  type ChangePasswordRequest,
  type CreateBindingRequest,
  type CreateUserRequest,
  type Dashboard,
  ERROR_CODES,
  type ErrorCode,
  type Intercept,
  type InterceptListQuery,
  type IntegrityReport,
  type LoginRequest,
  type LoginResponse,
  type Me,
  type Page,
  type PageQuery,
  type Route,
  type RouteInput,
  type SettingsResponse,
  type SetBindingPolicyRequest,
  type SettingsUpdate,
  type TestAlertResult,
  type UpdateBindingIpRequest,
} from '@keypin/shared';

/** Where the admin API lives, relative to the console's origin. */
export const API_BASE = '/admin/api';

/**
 * The codes the console gives failures the API did not describe: the server
 * could not be reached, answered without a KeyPin error body, or sent a
 * success that is not JSON.
 */
export type ClientErrorCode = 'network_error' | 'http_error' | 'bad_response';

/**
 * What `ApiError.code` can be: one of the contract's codes, one of the
 * console's own, or `unknown` for an error body whose code the console does
 * not know (a newer server) or that has none.
 */
export type ApiErrorCode = ErrorCode | ClientErrorCode | 'unknown';

/** True for a code the contract defines (docs/contract.md, libs/shared errors.ts). */
export function isErrorCode(v: unknown): v is ErrorCode {
  return typeof v === 'string' && Object.hasOwn(ERROR_CODES, v);
}

/**
 * A failed call: the API's own error (`{"error": {message, type, code}}`), or
 * a network failure / unreadable answer (status 0 or the HTTP status, with a
 * code of our own). `message` is always a sentence fit to show a person.
 */
export class ApiError extends Error {
  override readonly name = 'ApiError';

  constructor(
    readonly status: number,
    readonly code: ApiErrorCode,
    message: string,
    /** Seconds from `Retry-After`, when the answer had one. */
    readonly retryAfter: number | null = null,
    /**
     * The input a 422 `validation_failed` names (`policy.max_tokens`,
     * `default_policy.models[2]`), when the answer named one.
     */
    readonly field: string | null = null,
  ) {
    super(message);
  }
}

/** The message to show for anything a call threw. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

type QueryValue = string | number | boolean | null | undefined;

/** `?a=1&b=x` from the defined, non-empty values, in a stable order. */
export function queryString(query: object | undefined): string {
  if (!query) return '';
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query as Record<string, QueryValue>)) {
    if (v === undefined || v === null || v === '') continue;
    params.append(k, String(v));
  }
  const s = params.toString();
  return s === '' ? '' : `?${s}`;
}

function parseRetryAfter(value: string | null): number | null {
  if (value === null) return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  if (Number.isNaN(at)) return null;
  return Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

function isErrorBody(
  v: unknown,
): v is { error: { message: string; code?: unknown; field?: unknown }; field?: unknown } {
  if (typeof v !== 'object' || v === null) return false;
  const e = (v as { error?: unknown }).error;
  return typeof e === 'object' && e !== null && typeof (e as { message?: unknown }).message === 'string';
}

async function errorFrom(res: Response): Promise<ApiError> {
  const retryAfter = parseRetryAfter(res.headers.get('retry-after'));
  let text = '';
  try {
    text = await res.text();
  } catch {
    // The body could not be read: fall through to the status line.
  }
  try {
    const body: unknown = JSON.parse(text);
    if (isErrorBody(body)) {
      const code = isErrorCode(body.error.code) ? body.error.code : 'unknown';
      // The gateway puts `field` beside `error` (all-exceptions.filter.ts);
      // inside `error` is read too, for a server that nests it.
      const field = [body.field, body.error.field].find((f): f is string => typeof f === 'string') ?? null;
      return new ApiError(res.status, code, body.error.message, retryAfter, field);
    }
  } catch {
    // Not JSON (a proxy's HTML page, an empty body): described below.
  }
  const what = res.statusText ? `${res.status} ${res.statusText}` : `HTTP ${res.status}`;
  return new ApiError(res.status, 'http_error', `The server answered ${what}.`, retryAfter);
}

export interface ApiClientOptions {
  /** The bearer token to send, or null when logged out. */
  getToken: () => string | null;
  /** Called when an authenticated call answers 401 (the session is over). */
  onUnauthorized?: (err: ApiError) => void;
  baseUrl?: string;
  fetch?: typeof fetch;
}

interface RequestOptions {
  query?: object;
  body?: unknown;
  /** Login: a 401 is a wrong password, not an expired session. */
  anonymous?: boolean;
}

/** A file the API sent as an attachment. */
export interface Download {
  blob: Blob;
  fileName: string;
}

function fileNameOf(disposition: string | null, fallback: string): string {
  if (!disposition) return fallback;
  const star = /filename\*\s*=\s*(?:UTF-8'')?([^;]+)/i.exec(disposition);
  if (star?.[1]) {
    try {
      return decodeURIComponent(star[1].trim().replace(/^"|"$/g, ''));
    } catch {
      // Badly encoded: try the plain parameter.
    }
  }
  const plain = /filename\s*=\s*"?([^";]+)"?/i.exec(disposition);
  return plain?.[1]?.trim() || fallback;
}

/**
 * The one typed client of the admin API (docs/contract.md 4). Every method maps
 * to one route; request and response types come from `@keypin/shared`.
 */
export class ApiClient {
  private readonly base: string;
  private readonly fetchFn: typeof fetch;

  constructor(private readonly opts: ApiClientOptions) {
    this.base = opts.baseUrl ?? API_BASE;
    this.fetchFn = opts.fetch ?? ((input, init) => fetch(input, init));
  }

  private async send(method: string, path: string, opts: RequestOptions, accept: string): Promise<Response> {
    const headers: Record<string, string> = { accept };
    const token = opts.anonymous ? null : this.opts.getToken();
    if (token) headers['authorization'] = `Bearer ${token}`;
    let body: string | undefined;
    if (opts.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(opts.body);
    }
    let res: Response;
    try {
      res = await this.fetchFn(`${this.base}${path}${queryString(opts.query)}`, { method, headers, body });
    } catch (err) {
      throw new ApiError(0, 'network_error', `Cannot reach the KeyPin server (${errorMessage(err)}).`);
    }
    if (!res.ok) {
      const err = await errorFrom(res);
      if (res.status === 401 && !opts.anonymous) this.opts.onUnauthorized?.(err);
      throw err;
    }
    return res;
  }

  async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const res = await this.send(method, path, opts, 'application/json');
    const text = await res.text();
    if (text === '') return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ApiError(res.status, 'bad_response', 'The server sent an answer that is not JSON.');
    }
  }

  // --- session
  login(body: LoginRequest): Promise<LoginResponse> {
    return this.request('POST', '/login', { body, anonymous: true });
  }
  me(): Promise<Me> {
    return this.request('GET', '/me');
  }

  // --- dashboard
  dashboard(): Promise<Dashboard> {
    return this.request('GET', '/dashboard');
  }
  /** Both hash chains recomputed (docs/integrity.md): reads every record, so it may take a while. */
  integrity(): Promise<IntegrityReport> {
    return this.request('GET', '/integrity');
  }

  // --- bindings
  bindings(query: BindingListQuery): Promise<Page<Binding>> {
    return this.request('GET', '/bindings', { query });
  }
  binding(id: number): Promise<Binding> {
    return this.request('GET', `/bindings/${encodeURIComponent(id)}`);
  }
  createBinding(body: CreateBindingRequest): Promise<Binding> {
    return this.request('POST', '/bindings', { body });
  }
  unbind(id: number): Promise<Binding> {
    return this.request('POST', '/bindings/unbind', { body: { id } });
  }
  updateBindingIp(body: UpdateBindingIpRequest): Promise<Binding> {
    return this.request('PUT', '/bindings/ip', { body });
  }
  setBindingPolicy(body: SetBindingPolicyRequest): Promise<Binding> {
    return this.request('PUT', '/bindings/policy', { body });
  }
  bindingUsage(id: number): Promise<BindingUsage> {
    return this.request('GET', `/bindings/${encodeURIComponent(id)}/usage`);
  }
  ban(id: number): Promise<Binding> {
    return this.request('POST', '/bindings/ban', { body: { id } });
  }
  unban(id: number): Promise<Binding> {
    return this.request('POST', '/bindings/unban', { body: { id } });
  }

  // --- intercept logs
  logs(query: InterceptListQuery): Promise<Page<Intercept>> {
    return this.request('GET', '/logs', { query });
  }
  /** The CSV of exactly these filters (paging is not a filter and is dropped). */
  async exportLogs(query: InterceptListQuery): Promise<Download> {
    const { page: _page, page_size: _size, ...filters } = query;
    const res = await this.send('GET', '/logs/export', { query: filters }, 'text/csv');
    const blob = await res.blob();
    return { blob, fileName: fileNameOf(res.headers.get('content-disposition'), 'keypin-intercepts.csv') };
  }

  // --- routes (docs/contract.md 10): header values are write-only, never answered
  routes(query: PageQuery): Promise<Page<Route>> {
    return this.request('GET', '/routes', { query });
  }
  route(id: number): Promise<Route> {
    return this.request('GET', `/routes/${encodeURIComponent(id)}`);
  }
  createRoute(body: RouteInput): Promise<Route> {
    return this.request('POST', '/routes', { body });
  }
  /** Only the fields given change; `upstream_headers` given replaces the whole set; `require_header: null` removes it. */
  updateRoute(id: number, body: Partial<RouteInput>): Promise<Route> {
    return this.request('PUT', `/routes/${encodeURIComponent(id)}`, { body });
  }
  /** The deleted route, or nothing when the API answers without a body. */
  deleteRoute(id: number): Promise<Route | undefined> {
    return this.request('DELETE', `/routes/${encodeURIComponent(id)}`);
  }

  // --- alerts, settings, users, audit
  alerts(query: AlertListQuery): Promise<Page<Alert>> {
    return this.request('GET', '/alerts', { query });
  }
  alert(id: string): Promise<Alert> {
    return this.request('GET', `/alerts/${encodeURIComponent(id)}`);
  }
  /** Allows one of the alert's networks, bans its key or dismisses it (docs/alerts.md). */
  alertAction(id: string, action: AlertAction, network?: string): Promise<AlertActionResult> {
    const body = action === 'allow-network' ? { network } : {};
    return this.request('POST', `/alerts/${encodeURIComponent(id)}/${action}`, { body });
  }
  settings(): Promise<SettingsResponse> {
    return this.request('GET', '/settings');
  }
  updateSettings(body: SettingsUpdate): Promise<SettingsResponse> {
    return this.request('PUT', '/settings', { body });
  }
  /** One sample alert through the saved webhook format and URL, and what the receiver answered (docs/alert-formats.md). */
  testAlert(): Promise<TestAlertResult> {
    return this.request('POST', '/settings/test-alert', { body: {} });
  }
  users(query: PageQuery): Promise<Page<AdminUser>> {
    return this.request('GET', '/users', { query });
  }
  createUser(body: CreateUserRequest): Promise<AdminUser> {
    return this.request('POST', '/users', { body });
  }
  deleteUser(id: number): Promise<AdminUser> {
    return this.request('DELETE', `/users/${encodeURIComponent(id)}`);
  }
  setPassword(id: number, body: ChangePasswordRequest): Promise<AdminUser> {
    return this.request('PUT', `/users/${encodeURIComponent(id)}/password`, { body });
  }
  audit(query: PageQuery): Promise<Page<AuditEntry>> {
    return this.request('GET', '/audit', { query });
  }
}
