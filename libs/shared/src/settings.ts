/** The run-time settings object (docs/contract.md 4, `GET /settings`). */
import { type KeyRules, TOKEN_NORMALIZE_VALUES, type TokenNormalize } from './key';
import { EMPTY_NETWORK_POLICY, type NetworkPolicy, validateNetworkPolicy } from './network-policy';
import { type KeyPolicy, validatePolicy } from './policy';
import { KEY_CASES, type KeyCase, RELAYS, type Relay } from './relay';

export type FailsafeMode = 'closed' | 'open';
export type EnforceMode = 'enforce' | 'monitor';

export const FAILSAFE_MODES: readonly FailsafeMode[] = ['closed', 'open'];
export const ENFORCE_MODES: readonly EnforceMode[] = ['enforce', 'monitor'];

/**
 * The body an alert webhook carries (docs/contract.md 11, docs/alert-formats.md):
 * `standard` is the contract's JSON with Standard Webhooks headers; the others
 * are what that service's incoming webhook accepts.
 */
export type AlertWebhookFormat = 'standard' | 'slack' | 'discord' | 'feishu' | 'dingtalk' | 'wecom';
export const ALERT_WEBHOOK_FORMATS: readonly AlertWebhookFormat[] = [
  'standard',
  'slack',
  'discord',
  'feishu',
  'dingtalk',
  'wecom',
];

export interface Settings {
  failsafe_mode: FailsafeMode;
  enforce_mode: EnforceMode;
  alert_webhook_url: string | null;
  /** How an alert is written for its webhook (docs/alert-formats.md). */
  alert_webhook_format: AlertWebhookFormat;
  alert_threshold_count: number;
  alert_threshold_seconds: number;
  archive_days: number;
  bind_ipv4_prefix: number;
  bind_ipv6_prefix: number;
  auto_ban: boolean;
  token_normalize: TokenNormalize;
  /** Which relay's key parsing decides a key's identity (docs/contract.md 2.1). */
  relay: Relay;
  /** Whether the relay's key store compares keys with or without case. */
  key_case: KeyCase;
  /** The policy of every binding without its own (docs/contract.md 9); null = unlimited. */
  default_policy: KeyPolicy | null;
  /** Who may use the gateway at all, and where keys may bind first (docs/contract.md 10). */
  networks: NetworkPolicy;
}

/**
 * The settings that decide every key's identity (docs/contract.md 2.1): a binding is
 * found by the hash of the canonical key, and these decide the canonical
 * key, so changing one leaves every existing binding unreachable (the admin
 * API answers 409 `would_unbind_all` unless the change is confirmed).
 */
export const IDENTITY_SETTINGS: readonly (keyof Settings)[] = ['relay', 'token_normalize', 'key_case'];

/** The settings that hold an integer (each has limits in `SETTING_LIMITS`). */
export type IntSetting = { [K in keyof Settings]: Settings[K] extends number ? K : never }[keyof Settings];

/** The settings that hold one of a fixed set of strings (listed in `SETTING_ENUMS`). */
export type EnumSetting = {
  [K in keyof Settings]: Settings[K] extends string ? (string extends Settings[K] ? never : K) : never;
}[keyof Settings];

/** An integer setting's inclusive range. */
export interface SettingLimit {
  min: number;
  max: number;
}

/**
 * The one definition of each integer setting's range: the admin API and
 * the console validate with it (`validateSettingsPatch`), the environment
 * variables are checked against it (`config.ts`).
 */
export const SETTING_LIMITS: { readonly [K in IntSetting]: SettingLimit } = {
  alert_threshold_count: { min: 1, max: 1_000_000 },
  /** 1 second to 30 days. */
  alert_threshold_seconds: { min: 1, max: 30 * 86400 },
  archive_days: { min: 1, max: 36500 },
  bind_ipv4_prefix: { min: 0, max: 32 },
  bind_ipv6_prefix: { min: 0, max: 128 },
};

/** The one definition of each enumerated setting's values. */
export const SETTING_ENUMS: { readonly [K in EnumSetting]: readonly Settings[K][] } = {
  failsafe_mode: FAILSAFE_MODES,
  enforce_mode: ENFORCE_MODES,
  alert_webhook_format: ALERT_WEBHOOK_FORMATS,
  token_normalize: TOKEN_NORMALIZE_VALUES,
  relay: RELAYS,
  key_case: KEY_CASES,
};

/**
 * Each setting's value when neither its environment variable nor the
 * `settings` table sets it.
 */
export const SETTING_DEFAULTS: Readonly<Settings> = {
  failsafe_mode: 'closed',
  enforce_mode: 'enforce',
  alert_webhook_url: null,
  alert_webhook_format: 'standard',
  alert_threshold_count: 5,
  alert_threshold_seconds: 300,
  archive_days: 90,
  bind_ipv4_prefix: 32,
  bind_ipv6_prefix: 64,
  auto_ban: false,
  token_normalize: 'newapi',
  relay: 'newapi',
  key_case: 'sensitive',
  default_policy: null,
  networks: EMPTY_NETWORK_POLICY,
};

/** The settings that decide every key's identity (docs/contract.md 2.1). */
export function keyRulesOf(s: Settings): KeyRules {
  return { relay: s.relay, tokenNormalize: s.token_normalize, keyCase: s.key_case };
}

export type RuleType = 'single' | 'multiple' | 'all';
export const RULE_TYPES: readonly RuleType[] = ['single', 'multiple', 'all'];

export type BindingStatus = 'active' | 'banned';
export const BINDING_STATUSES: readonly BindingStatus[] = ['active', 'banned'];

/**
 * Why a request with a key was refused and recorded (docs/contract.md 3, 10):
 * the binding's verdicts, then the network policy's (these may have no
 * binding: `binding_id` null).
 */
export type InterceptReason =
  'ip_not_allowed' | 'key_banned' | 'network_not_allowed' | 'network_denied' | 'first_use_not_allowed';
export const INTERCEPT_REASONS: readonly InterceptReason[] = [
  'ip_not_allowed',
  'key_banned',
  'network_not_allowed',
  'network_denied',
  'first_use_not_allowed',
];

export type SettingsPatchResult =
  { ok: true; value: Partial<Settings> } | { ok: false; field: string; message: string };

/** The same tables, looked up by any setting name. */
const INT_LIMITS: Partial<Record<keyof Settings, SettingLimit>> = SETTING_LIMITS;
const ENUMS: Partial<Record<keyof Settings, readonly string[]>> = SETTING_ENUMS;

export const SETTINGS_KEYS: readonly (keyof Settings)[] = [
  'failsafe_mode',
  'enforce_mode',
  'alert_webhook_url',
  'alert_webhook_format',
  'alert_threshold_count',
  'alert_threshold_seconds',
  'archive_days',
  'bind_ipv4_prefix',
  'bind_ipv6_prefix',
  'auto_ban',
  'token_normalize',
  'relay',
  'key_case',
  'default_policy',
  'networks',
];

/**
 * Validates a partial settings object (unknown fields refused). Used by the
 * admin API, the console form, and when reading stored overrides.
 */
export function validateSettingsPatch(input: unknown): SettingsPatchResult {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    return { ok: false, field: 'body', message: 'must be a JSON object' };
  }
  const out: Record<string, unknown> = {};
  for (const [field, value] of Object.entries(input as Record<string, unknown>)) {
    const key = field as keyof Settings;
    if (!SETTINGS_KEYS.includes(key)) return { ok: false, field, message: 'is not a setting' };
    const limits = INT_LIMITS[key];
    const choices = ENUMS[key];
    if (limits) {
      if (typeof value !== 'number' || !Number.isInteger(value) || value < limits.min || value > limits.max) {
        return { ok: false, field, message: `must be an integer from ${limits.min} to ${limits.max}` };
      }
    } else if (choices) {
      if (typeof value !== 'string' || !choices.includes(value)) {
        return { ok: false, field, message: `must be one of ${choices.join(', ')}` };
      }
    } else if (key === 'auto_ban') {
      if (typeof value !== 'boolean') return { ok: false, field, message: 'must be true or false' };
    } else if (key === 'default_policy') {
      const r = validatePolicy(value, field);
      if (!r.ok) return r;
      out[key] = r.value;
      continue;
    } else if (key === 'networks') {
      const r = validateNetworkPolicy(value, field);
      if (!r.ok) return r;
      out[key] = r.value;
      continue;
    } else if (key === 'alert_webhook_url') {
      if (value !== null && !isHttpUrl(value)) {
        return { ok: false, field, message: 'must be an http or https URL, or null' };
      }
    }
    out[key] = value;
  }
  return { ok: true, value: out };
}

function isHttpUrl(value: unknown): boolean {
  if (typeof value !== 'string' || value.length > 2048) return false;
  try {
    const u = new URL(value);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
  } catch {
    return false;
  }
}
