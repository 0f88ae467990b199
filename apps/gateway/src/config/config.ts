import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import {
  type Cidr,
  type EnumSetting,
  type IntSetting,
  parseCidrList,
  cidrErrorMessage,
  SETTING_DEFAULTS,
  type KeyPolicy,
  type NetworkPolicy,
  ROUTE_LIMITS,
  type RouteSpec,
  validateCidrList,
  validatePolicy,
  validateRoute,
  SETTING_ENUMS,
  SETTING_LIMITS,
  type Settings,
} from '@keypin/shared';
import { missingEnvReference, missingReferenceMessage } from '../route/route-env';
import type { RedisNode, RedisTopology } from '../infra/redis/redis-topology';
import { DEFAULT_SEMI_SPACE_MB } from '../cluster/node-flags';

/** A bad variable: the process prints `message` on one line and exits. */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    detail: string,
  ) {
    super(`Invalid configuration: ${variable} ${detail}`);
  }
}

export type Role = 'all' | 'gateway' | 'worker';

/** A value that must never be logged: `String(secret)` is redacted. */
export class Secret {
  readonly #value: Buffer;
  constructor(value: string | Buffer) {
    this.#value = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  }
  reveal(): Buffer {
    return this.#value;
  }
  revealText(): string {
    return this.#value.toString('utf8');
  }
  get byteLength(): number {
    return this.#value.length;
  }
  toString(): string {
    return '[secret]';
  }
  toJSON(): string {
    return '[secret]';
  }
}

export interface AppConfig {
  production: boolean;
  port: number;
  host: string;
  /** Null outside production when unset: the bundled demo upstream is started. */
  downstreamUrl: URL | null;
  databaseUrl: string;
  redisUrl: string;
  /**
   * The Redis topology (docs/redis.md): standalone at REDIS_URL, a Sentinel
   * group (REDIS_SENTINELS + REDIS_SENTINEL_NAME) or a Redis Cluster
   * (REDIS_CLUSTER_NODES); REDIS_URL then gives only credentials, TLS and database.
   */
  redis: RedisTopology;
  redisPrefix: string;
  hmacSecret: Secret;
  /** True when HMAC_SECRET was not given and a development value is in use. */
  hmacSecretIsDevDefault: boolean;
  adminUsername: string;
  adminPassword: Secret | null;
  adminJwtSecret: Secret;
  adminJwtTtlSeconds: number;
  adminDocs: boolean;
  trustedProxies: Cidr[];
  trustedProxiesText: string;
  realIpHeader: 'x-real-ip' | 'x-forwarded-for';
  role: Role;
  /**
   * WORKERS (docs/contract.md 12): serving processes on one port. 1 (the
   * default) is one process doing everything its ROLE says; 2 or more makes
   * this process a supervisor (docs/workers.md). `auto` = the cores there are.
   */
  workers: number;
  /** How the supervisor hands connections to its workers (docs/workers.md). */
  clusterSchedule: 'rr' | 'none';
  /**
   * NODE_SEMI_SPACE_MB: V8's `--max-semi-space-size` for the processes the
   * supervisor forks (0 = V8's own default); docs/workers.md, "Young generation".
   */
  semiSpaceMb: number;
  /** Initial values of the run-time settings (the database may override them). */
  settings: Settings;
  /**
   * ROUTES: the initial routes (docs/contract.md 10), written into the
   * `routes` table at start when it is empty and ignored once routes are
   * stored. Header values as written (`${env:NAME}` unresolved).
   */
  routes: RouteSpec[];
  alertWebhookSecret: Secret | null;
  /**
   * PUBLIC_URL: where people reach KeyPin (scheme, host, optional path; no
   * trailing slash), for links that leave it: the webhook's `console_url`
   * (docs/alerts.md). Null when unset.
   */
  publicUrl: string | null;
  /** Lets webhooks go to loopback/private/link-local addresses (tests, internal receivers). */
  alertWebhookAllowPrivate: boolean;
  downstreamConnectTimeoutMs: number;
  downstreamHeadersTimeoutMs: number;
  downstreamBodyTimeoutMs: number;
  /** Upper bound on connections to the downstream (0 = unlimited); more requests wait in the pool's queue. */
  downstreamMaxConnections: number;
  /** DOWNSTREAM_CLIENT: the HTTP client of the upstream hop (docs/upstream-client.md). */
  downstreamClient: 'undici' | 'keypin';
  /** First uses per minute from one client network (/24, /48); 0 = unlimited. */
  firstUseLimit: number;
  /** A request body silent this long is aborted (0 = never). */
  bodyTimeoutMs: number;
  /** Requests in flight per client IP on one instance (0 = unlimited). */
  maxInflightPerIp: number;
  /** The largest body read for a policy's `models` / `max_tokens` (docs/contract.md 9). */
  policyBodyLimit: number;
  /** ACCESS_LOG: `json` writes one line per proxied request to stdout (docs/contract.md 10). */
  accessLog: 'off' | 'json';
  shutdownGraceMs: number;
  cacheMaxEntries: number;
  cacheTtlMs: number;
  logLevel: string;
  spoolDir: string;
  archiveIntervalMs: number;
  /** INTERCEPT_RETENTION_DAYS: intercepts are kept this long, then dropped a whole month at a time (docs/data.md). */
  interceptRetentionDays: number;
  webhookRetryBaseMs: number;
  webhookMaxAttempts: number;
  webhookTimeoutMs: number;
  /** How often pending alerts whose delivery job may be lost are re-queued. */
  alertSweepMs: number;
  /** A queued intercept batch not in PostgreSQL after this long, whose job is gone, is written directly. */
  interceptRescueMs: number;
}

/** The development HMAC key used when HMAC_SECRET is unset outside production. */
const DEV_HMAC_SECRET = 'keypin-development-hmac-secret-do-not-use-in-production';

type Env = Record<string, string | undefined>;

function read(env: Env, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

function int(env: Env, name: string, def: number, min: number, max: number): number {
  const raw = read(env, name);
  if (raw === undefined) return def;
  if (!/^-?\d+$/.test(raw)) throw new ConfigError(name, `must be an integer, got "${raw}"`);
  const n = Number(raw);
  if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
  return n;
}

/** A whole number of at least 1 (and at most `max`), or the default when unset. */
function positiveInt(env: Env, name: string, def: number, max: number): number {
  const raw = read(env, name);
  if (raw === undefined) return def;
  if (!/^\d+$/.test(raw) || Number(raw) < 1) {
    throw new ConfigError(name, `must be a positive whole number of days, got "${raw}"`);
  }
  const n = Number(raw);
  if (n > max) throw new ConfigError(name, `must be at most ${max}, got ${n}`);
  return n;
}

/** WORKERS: a count from 1 to 64, or `auto` (the cores this process may use). */
function workers(env: Env): number {
  const raw = read(env, 'WORKERS');
  if (raw !== undefined && raw.toLowerCase() === 'auto')
    return Math.max(1, Math.min(64, availableParallelism()));
  return int(env, 'WORKERS', 1, 1, 64);
}

function oneOf<T extends string>(env: Env, name: string, values: readonly T[], def: T): T {
  const raw = read(env, name);
  if (raw === undefined) return def;
  const v = raw.toLowerCase() as T;
  if (!values.includes(v)) throw new ConfigError(name, `must be one of ${values.join(', ')}, got "${raw}"`);
  return v;
}

/** DEFAULT_POLICY: the default key policy as JSON (docs/contract.md 9), checked like the admin API checks it. */
function defaultPolicy(env: Env): KeyPolicy | null {
  const raw = read(env, 'DEFAULT_POLICY');
  if (raw === undefined) return SETTING_DEFAULTS.default_policy;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw new ConfigError('DEFAULT_POLICY', 'must be a JSON object like {"rate_per_second": 5}, or null');
  }
  const r = validatePolicy(value, 'DEFAULT_POLICY');
  if (!r.ok) throw new ConfigError('DEFAULT_POLICY', `${r.field} ${r.message}`);
  return r.value;
}

/**
 * ROUTES: a JSON array of routes, each checked as the admin API checks one
 * (`ROUTES[1].prefix` names a bad field), prefixes unique, every
 * `${env:NAME}` a header value names set in `env`. The message never holds
 * a header value (nor JSON.parse's, which may quote the text).
 */
function routes(env: Env): RouteSpec[] {
  const raw = read(env, 'ROUTES');
  if (raw === undefined) return [];
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw new ConfigError(
      'ROUTES',
      'must be a JSON array of routes like [{"prefix": "/openai/", "upstream": "https://api.openai.com"}]',
    );
  }
  if (!Array.isArray(value)) throw new ConfigError('ROUTES', 'must be a JSON array of routes');
  if (value.length > ROUTE_LIMITS.routes) {
    throw new ConfigError('ROUTES', `holds at most ${ROUTE_LIMITS.routes} routes, got ${value.length}`);
  }
  const out: RouteSpec[] = [];
  for (let i = 0; i < value.length; i++) {
    const at = `ROUTES[${i}]`;
    const r = validateRoute(value[i], at);
    if (!r.ok) throw new ConfigError('ROUTES', `${r.field} ${r.message}`);
    const twin = out.findIndex((o) => o.prefix === r.value.prefix);
    if (twin !== -1) throw new ConfigError('ROUTES', `${at}.prefix repeats the prefix of ROUTES[${twin}]`);
    const missing = missingEnvReference(r.value, env, at);
    if (missing) {
      throw new ConfigError('ROUTES', `${missing.field} ${missingReferenceMessage(missing.variable)}`);
    }
    out.push(r.value);
  }
  return out;
}

/** A network policy list (docs/contract.md 10): comma-separated IPs or canonical CIDRs, empty when unset. */
function cidrList(env: Env, name: string): string[] {
  const raw = read(env, name);
  if (raw === undefined) return [];
  const entries = raw
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '');
  const r = validateCidrList(entries, name);
  if (!r.ok) throw new ConfigError(name, r.message);
  return r.value;
}

/** The network policy's initial value: NETWORK_ALLOW, NETWORK_DENY, FIRST_USE_FROM. */
function networks(env: Env): NetworkPolicy {
  return {
    allow: cidrList(env, 'NETWORK_ALLOW'),
    deny: cidrList(env, 'NETWORK_DENY'),
    first_use_from: cidrList(env, 'FIRST_USE_FROM'),
  };
}

/** A run-time setting's initial value: its default and limits are the shared ones (`@keypin/shared`). */
function intSetting(env: Env, name: string, key: IntSetting): number {
  const { min, max } = SETTING_LIMITS[key];
  return int(env, name, SETTING_DEFAULTS[key], min, max);
}

/** A run-time setting's initial value, one of the shared values (`@keypin/shared`). */
function enumSetting<K extends EnumSetting>(env: Env, name: string, key: K): Settings[K] {
  return oneOf(env, name, SETTING_ENUMS[key], SETTING_DEFAULTS[key]);
}

function bool(env: Env, name: string, def: boolean): boolean {
  const raw = read(env, name);
  if (raw === undefined) return def;
  const v = raw.toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(v)) return true;
  if (['false', '0', 'no', 'off'].includes(v)) return false;
  throw new ConfigError(name, `must be true or false, got "${raw}"`);
}

function url(env: Env, name: string, protocols: string[]): URL | undefined {
  const raw = read(env, name);
  if (raw === undefined) return undefined;
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new ConfigError(name, `is not a valid URL`);
  }
  if (!protocols.includes(u.protocol)) {
    throw new ConfigError(name, `must use ${protocols.join(' or ')}, got ${u.protocol}`);
  }
  return u;
}

/** A `host:port,…` list (REDIS_SENTINELS, REDIS_CLUSTER_NODES); IPv6 hosts in brackets. */
function nodeList(env: Env, name: string): RedisNode[] | undefined {
  const raw = read(env, name);
  if (raw === undefined) return undefined;
  const entries = raw
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '');
  if (entries.length === 0) throw new ConfigError(name, 'must list at least one host:port');
  return entries.map((entry) => {
    const m = /^(\[[0-9a-fA-F:.]+\]|[^\s:[\]/]+):(\d{1,5})$/.exec(entry);
    const port = m ? Number(m[2]) : 0;
    if (!m || port < 1 || port > 65535) {
      throw new ConfigError(name, `must be a comma-separated list of host:port, got "${entry}"`);
    }
    return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
  });
}

/**
 * Which Redis: REDIS_SENTINELS (with REDIS_SENTINEL_NAME, optional
 * REDIS_SENTINEL_PASSWORD and REDIS_SENTINEL_TLS) or REDIS_CLUSTER_NODES, never both; else the
 * standalone server at REDIS_URL (docs/redis.md).
 */
function redisTopology(env: Env, url: string, prefix: string): RedisTopology {
  const sentinels = nodeList(env, 'REDIS_SENTINELS');
  const clusterNodes = nodeList(env, 'REDIS_CLUSTER_NODES');
  const name = read(env, 'REDIS_SENTINEL_NAME');
  const sentinelPassword = env['REDIS_SENTINEL_PASSWORD'] ? new Secret(env['REDIS_SENTINEL_PASSWORD']) : null;
  const sentinelTls = bool(env, 'REDIS_SENTINEL_TLS', false);
  if (sentinels && clusterNodes) {
    throw new ConfigError(
      'REDIS_CLUSTER_NODES',
      'cannot be combined with REDIS_SENTINELS: set one of them (a Redis Cluster or a Sentinel group)',
    );
  }
  if (!sentinels) {
    if (name !== undefined) throw new ConfigError('REDIS_SENTINEL_NAME', 'needs REDIS_SENTINELS');
    if (sentinelPassword) throw new ConfigError('REDIS_SENTINEL_PASSWORD', 'needs REDIS_SENTINELS');
    if (sentinelTls) throw new ConfigError('REDIS_SENTINEL_TLS', 'needs REDIS_SENTINELS');
  }
  if (sentinels) {
    if (name === undefined) {
      throw new ConfigError(
        'REDIS_SENTINEL_NAME',
        "is required with REDIS_SENTINELS (the primary's name, e.g. mymaster)",
      );
    }
    return { kind: 'sentinel', url, sentinels, name, sentinelPassword, sentinelTls };
  }
  if (clusterNodes) {
    if (!['', '0'].includes(new URL(url).pathname.replace(/^\//, ''))) {
      throw new ConfigError(
        'REDIS_URL',
        'must use database 0 with REDIS_CLUSTER_NODES (a Redis Cluster has no other)',
      );
    }
    if (/[{}]/.test(prefix)) {
      throw new ConfigError(
        'REDIS_PREFIX',
        'must not contain { or } with REDIS_CLUSTER_NODES (KeyPin adds the hash tags)',
      );
    }
    return { kind: 'cluster', url, nodes: clusterNodes };
  }
  return { kind: 'standalone', url };
}

/** PUBLIC_URL: an http(s) base without query or fragment, kept without its trailing slashes. */
function publicUrl(env: Env): string | null {
  const u = url(env, 'PUBLIC_URL', ['http:', 'https:']);
  if (!u) return null;
  if (u.search !== '' || u.hash !== '' || u.username !== '' || u.password !== '') {
    throw new ConfigError(
      'PUBLIC_URL',
      'must be a plain base URL like https://keypin.example.com (no query, fragment or credentials)',
    );
  }
  return `${u.origin}${u.pathname.replace(/\/+$/, '')}`;
}

function secret(env: Env, name: string, production: boolean, minBytes: number): Secret | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') {
    if (production) throw new ConfigError(name, `is required in production (at least ${minBytes} bytes)`);
    return undefined;
  }
  const s = new Secret(raw);
  if (production && s.byteLength < minBytes) {
    throw new ConfigError(name, `must be at least ${minBytes} bytes in production, got ${s.byteLength}`);
  }
  return s;
}

/** Parses and validates the whole configuration; throws ConfigError naming the variable. */
export function loadConfig(env: Env = process.env): AppConfig {
  const production = read(env, 'NODE_ENV') === 'production';

  const downstream = url(env, 'DOWNSTREAM_URL', ['http:', 'https:']);
  if (production && !downstream) throw new ConfigError('DOWNSTREAM_URL', 'is required in production');

  const databaseUrl = read(env, 'DATABASE_URL') ?? 'postgres://postgres@127.0.0.1:5432/keypin';
  const dbUrl = url({ DATABASE_URL: databaseUrl }, 'DATABASE_URL', ['postgres:', 'postgresql:']);
  if (!dbUrl || dbUrl.pathname.length <= 1) {
    throw new ConfigError('DATABASE_URL', 'must name a database, e.g. postgres://user@host:5432/keypin');
  }
  const redisUrl = read(env, 'REDIS_URL') ?? 'redis://127.0.0.1:6379/0';
  url({ REDIS_URL: redisUrl }, 'REDIS_URL', ['redis:', 'rediss:']);
  const redisPrefix = env['REDIS_PREFIX'] ?? 'keypin:';
  if (redisPrefix === '' || /\s/.test(redisPrefix)) {
    throw new ConfigError('REDIS_PREFIX', 'must be a non-empty string without spaces');
  }

  const hmac = secret(env, 'HMAC_SECRET', production, 32);
  const jwt = secret(env, 'ADMIN_JWT_SECRET', production, 32);
  const adminPassword = env['ADMIN_PASSWORD'] ? new Secret(env['ADMIN_PASSWORD']) : null;
  if (production && adminPassword && adminPassword.byteLength < 12) {
    throw new ConfigError('ADMIN_PASSWORD', 'must be at least 12 characters in production');
  }

  const trustedText = env['TRUSTED_PROXIES'] ?? '127.0.0.1/32,::1/128';
  const trusted = parseCidrList(trustedText);
  if (!trusted.ok) throw new ConfigError('TRUSTED_PROXIES', cidrErrorMessage(trusted.entry, trusted.error));

  const webhookUrl = url(env, 'ALERT_WEBHOOK_URL', ['http:', 'https:']);

  const settings: Settings = {
    failsafe_mode: enumSetting(env, 'FAILSAFE_MODE', 'failsafe_mode'),
    enforce_mode: enumSetting(env, 'ENFORCE_MODE', 'enforce_mode'),
    alert_webhook_url: webhookUrl ? webhookUrl.toString() : SETTING_DEFAULTS.alert_webhook_url,
    alert_webhook_format: enumSetting(env, 'ALERT_WEBHOOK_FORMAT', 'alert_webhook_format'),
    alert_threshold_count: intSetting(env, 'ALERT_THRESHOLD_COUNT', 'alert_threshold_count'),
    alert_threshold_seconds: intSetting(env, 'ALERT_THRESHOLD_SECONDS', 'alert_threshold_seconds'),
    archive_days: intSetting(env, 'ARCHIVE_DAYS', 'archive_days'),
    bind_ipv4_prefix: intSetting(env, 'BIND_IPV4_PREFIX', 'bind_ipv4_prefix'),
    bind_ipv6_prefix: intSetting(env, 'BIND_IPV6_PREFIX', 'bind_ipv6_prefix'),
    auto_ban: bool(env, 'AUTO_BAN', SETTING_DEFAULTS.auto_ban),
    token_normalize: enumSetting(env, 'TOKEN_NORMALIZE', 'token_normalize'),
    relay: enumSetting(env, 'RELAY', 'relay'),
    key_case: enumSetting(env, 'KEY_CASE', 'key_case'),
    default_policy: defaultPolicy(env),
    networks: networks(env),
  };

  return {
    production,
    port: int(env, 'PORT', 8080, 0, 65535),
    host: read(env, 'HOST') ?? '0.0.0.0',
    downstreamUrl: downstream ?? null,
    databaseUrl,
    redisUrl,
    redis: redisTopology(env, redisUrl, redisPrefix),
    redisPrefix,
    hmacSecret: hmac ?? new Secret(DEV_HMAC_SECRET),
    hmacSecretIsDevDefault: hmac === undefined,
    adminUsername: read(env, 'ADMIN_USERNAME') ?? 'admin',
    adminPassword,
    adminJwtSecret: jwt ?? new Secret(randomBytes(32)),
    adminJwtTtlSeconds: int(env, 'ADMIN_JWT_TTL_SECONDS', 3600, 60, 86400),
    adminDocs: bool(env, 'ADMIN_DOCS', true),
    trustedProxies: trusted.cidrs,
    trustedProxiesText: trustedText,
    realIpHeader: oneOf(env, 'REAL_IP_HEADER', ['x-real-ip', 'x-forwarded-for'] as const, 'x-real-ip'),
    role: oneOf(env, 'ROLE', ['all', 'gateway', 'worker'] as const, 'all'),
    workers: workers(env),
    clusterSchedule: oneOf(env, 'CLUSTER_SCHEDULE', ['rr', 'none'] as const, 'rr'),
    semiSpaceMb: int(env, 'NODE_SEMI_SPACE_MB', DEFAULT_SEMI_SPACE_MB, 0, 256),
    settings,
    routes: routes(env),
    alertWebhookSecret: secret(env, 'ALERT_WEBHOOK_SECRET', false, 0) ?? null,
    publicUrl: publicUrl(env),
    alertWebhookAllowPrivate: bool(env, 'ALERT_WEBHOOK_ALLOW_PRIVATE', false),
    downstreamConnectTimeoutMs: int(env, 'DOWNSTREAM_CONNECT_TIMEOUT_MS', 10_000, 100, 600_000),
    downstreamHeadersTimeoutMs: int(env, 'DOWNSTREAM_HEADERS_TIMEOUT_MS', 300_000, 100, 3_600_000),
    downstreamBodyTimeoutMs: int(env, 'DOWNSTREAM_BODY_TIMEOUT_MS', 300_000, 0, 3_600_000),
    downstreamMaxConnections: int(env, 'DOWNSTREAM_MAX_CONNECTIONS', 1024, 0, 1_000_000),
    downstreamClient: oneOf(env, 'DOWNSTREAM_CLIENT', ['keypin', 'undici'] as const, 'keypin'),
    firstUseLimit: int(env, 'FIRST_USE_LIMIT', 30, 0, 1_000_000),
    bodyTimeoutMs: int(env, 'BODY_TIMEOUT_SECONDS', 60, 0, 86_400) * 1000,
    maxInflightPerIp: int(env, 'MAX_INFLIGHT_PER_IP', 256, 0, 1_000_000),
    policyBodyLimit: int(env, 'POLICY_BODY_LIMIT', 4 * 1024 * 1024, 1024, 256 * 1024 * 1024),
    accessLog: oneOf(env, 'ACCESS_LOG', ['off', 'json'] as const, 'off'),
    shutdownGraceMs: int(env, 'SHUTDOWN_GRACE_MS', 25_000, 0, 600_000),
    cacheMaxEntries: int(env, 'CACHE_MAX_ENTRIES', 500_000, 100, 50_000_000),
    cacheTtlMs: int(env, 'CACHE_TTL_SECONDS', 60, 1, 86400) * 1000,
    logLevel: oneOf(
      env,
      'LOG_LEVEL',
      ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const,
      'info',
    ),
    spoolDir: read(env, 'SPOOL_DIR') ?? 'spool',
    archiveIntervalMs: int(env, 'ARCHIVE_INTERVAL_MS', 3_600_000, 100, 7 * 86_400_000),
    interceptRetentionDays: positiveInt(env, 'INTERCEPT_RETENTION_DAYS', 365, 36_500),
    webhookRetryBaseMs: int(env, 'WEBHOOK_RETRY_BASE_MS', 60_000, 10, 3_600_000),
    webhookMaxAttempts: int(env, 'WEBHOOK_MAX_ATTEMPTS', 8, 5, 50),
    webhookTimeoutMs: int(env, 'WEBHOOK_TIMEOUT_MS', 10_000, 100, 60_000),
    alertSweepMs: int(env, 'ALERT_SWEEP_MS', 30_000, 100, 3_600_000),
    interceptRescueMs: int(env, 'INTERCEPT_RESCUE_MS', 15_000, 500, 3_600_000),
  };
}

export const APP_CONFIG = Symbol('APP_CONFIG');
