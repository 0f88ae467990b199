import {
  IDENTITY_SETTINGS,
  SETTING_LIMITS,
  type Settings,
  type SettingsResponse,
  SETTINGS_KEYS,
  type SettingsUpdate,
  validateSettingsPatch,
} from '@keypin/shared';
import { ApiError } from '../../api/client';
import {
  apiPolicyErrors,
  checkPolicy,
  choiceOf,
  type PolicyChoice,
  type PolicyErrors,
  samePolicy,
} from '../../components/policy/policy-form';
import {
  apiNetworkPolicyErrors,
  checkNetworkPolicy,
  draftOfNetworkPolicy,
  type NetworkPolicyDraft,
  type NetworkPolicyErrors,
  sameNetworkPolicy,
} from './network-policy-form';

/** The settings that hold one value (the default policy and the network policy are objects, each with its own form). */
export type ScalarSetting = Exclude<keyof Settings, 'default_policy' | 'networks'>;

export const SCALAR_SETTINGS = SETTINGS_KEYS.filter(
  (k): k is ScalarSetting => k !== 'default_policy' && k !== 'networks',
);

/** The field names of the default policy's complaints: `default_policy.<field>`. */
export const DEFAULT_POLICY_PREFIX = 'default_policy';

/** The form's text for every setting (numbers as typed), the default policy and the network policy as edited. */
export type SettingsDraft = { [K in ScalarSetting]: string | boolean } & {
  default_policy: PolicyChoice;
  networks: NetworkPolicyDraft;
};

export interface SecretDraft {
  /** A new secret to set; '' leaves it as it is. */
  value: string;
  clear: boolean;
}

export function draftOf(s: SettingsResponse): SettingsDraft {
  const d = {
    default_policy: choiceOf(s.default_policy),
    networks: draftOfNetworkPolicy(s.networks),
  } as SettingsDraft;
  for (const k of SCALAR_SETTINGS) {
    const v = s[k];
    d[k] = typeof v === 'boolean' ? v : v === null ? '' : String(v);
  }
  return d;
}

function valueOf(k: ScalarSetting, raw: string | boolean): unknown {
  if (typeof raw === 'boolean') return raw;
  if (k in SETTING_LIMITS) {
    const t = raw.trim();
    return /^-?\d+$/.test(t) ? Number(t) : t === '' ? null : Number.NaN;
  }
  if (k === 'alert_webhook_url') return raw.trim() === '' ? null : raw.trim();
  return raw;
}

function sentence(field: string, message: string): string {
  const label = field.replace(/_/g, ' ');
  return `${label.charAt(0).toUpperCase()}${label.slice(1)} ${message}.`;
}

export const MAX_SECRET_LENGTH = 512;

/**
 * The changed fields as a `PUT /settings` body, and a complaint per field,
 * each checked with the same validator the API uses. The default policy's
 * complaints are apart (`policyErrors`, keyed by the policy's field), and so
 * are the network policy's (`networkErrors`, keyed by its list).
 */
export function diffSettings(
  current: SettingsResponse,
  draft: SettingsDraft,
  secret: SecretDraft,
): {
  patch: SettingsUpdate;
  errors: Partial<Record<string, string>>;
  policyErrors: PolicyErrors;
  networkErrors: NetworkPolicyErrors;
  changed: number;
} {
  const patch: SettingsUpdate = {};
  const errors: Partial<Record<string, string>> = {};
  for (const k of SCALAR_SETTINGS) {
    const v = valueOf(k, draft[k]);
    const r = validateSettingsPatch({ [k]: v });
    if (!r.ok) {
      errors[k] = sentence(k, r.message);
      continue;
    }
    // The validator hands back the checked value: a typed patch entry.
    if (r.value[k] !== current[k]) Object.assign(patch, r.value);
  }
  if (secret.clear) {
    patch.alert_webhook_secret = null;
  } else if (secret.value !== '') {
    if (secret.value.length > MAX_SECRET_LENGTH)
      errors['alert_webhook_secret'] = `At most ${MAX_SECRET_LENGTH} characters.`;
    else patch.alert_webhook_secret = secret.value;
  }
  const policy = checkPolicy(draft.default_policy, DEFAULT_POLICY_PREFIX);
  if (policy.policy !== undefined && !samePolicy(policy.policy, current.default_policy)) {
    patch.default_policy = policy.policy;
  }
  // The whole policy when any list changed: a list left out of it would be emptied.
  const networks = checkNetworkPolicy(draft.networks);
  if (networks.policy !== undefined && !sameNetworkPolicy(networks.policy, current.networks)) {
    patch.networks = networks.policy;
  }
  return {
    patch,
    errors,
    policyErrors: policy.errors,
    networkErrors: networks.errors,
    changed: Object.keys(patch).length,
  };
}

/**
 * The API's refusal as complaints under the fields it names: a setting
 * (`alert_threshold_count`), a field of the default policy
 * (`default_policy.max_tokens`) or a list of the network policy
 * (`networks.deny[2]`). Empty when it names none of them.
 */
export function apiSettingsErrors(err: unknown): {
  errors: Partial<Record<string, string>>;
  policyErrors: PolicyErrors;
  networkErrors: NetworkPolicyErrors;
} {
  const policyErrors = apiPolicyErrors(err, DEFAULT_POLICY_PREFIX);
  const errors: Partial<Record<string, string>> = {};
  if (
    err instanceof ApiError &&
    err.code === 'validation_failed' &&
    err.field !== null &&
    (SCALAR_SETTINGS as readonly string[]).includes(err.field)
  ) {
    errors[err.field] = err.message;
  }
  return { errors, policyErrors, networkErrors: apiNetworkPolicyErrors(err) };
}

/** A `PUT /settings` body, possibly confirming that every binding is left behind. */
export type SettingsSave = SettingsUpdate & { confirm_unbind_all?: true };

/**
 * The identity settings (docs/contract.md 2.1) this change gives a new value:
 * changing one while bindings exist leaves every binding behind, so the API
 * asks for `confirm_unbind_all` (409 `would_unbind_all` without it).
 */
export function identityChanges(patch: SettingsUpdate): (keyof Settings)[] {
  return IDENTITY_SETTINGS.filter((k) => k in patch);
}

/** The API refused an identity change because bindings exist. */
export function isUnbindRefusal(err: unknown): err is ApiError {
  return err instanceof ApiError && err.code === 'would_unbind_all';
}

/** The same change, confirmed. */
export function confirmingUnbindAll(patch: SettingsUpdate): SettingsSave {
  return { ...patch, confirm_unbind_all: true };
}

/**
 * The API's refusal as the dialog shows it: without its closing advice to
 * send `confirm_unbind_all` (the dialog's button does that).
 */
export function unbindRefusalText(message: string): string {
  return message.replace(/\s*[^.]*confirm_unbind_all[^.]*\.?\s*$/, '');
}
