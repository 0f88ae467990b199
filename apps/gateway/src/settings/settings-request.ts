import {
  type IntSetting,
  MAX_POLICY_NETWORKS,
  NETWORK_POLICY_FIELDS,
  type NetworkPolicyField,
  SETTING_ENUMS,
  SETTING_LIMITS,
  type Settings,
  SETTINGS_KEYS,
  TEST_ALERT_BODY_LIMIT,
  validateSettingsPatch,
} from '@keypin/shared';
import { checkWebhookUrl } from '../alert/url-guard';
import { KeypinError } from '../infra/http/all-exceptions.filter';
import type { UnbindRefusal } from './settings.service';
import { WEBHOOK_SECRET_KEY } from './settings.service';
import { invalid } from '../admin/common/validation';
import { POLICY_SCHEMA } from '../policy/policy-schema';

export const MAX_SECRET_LENGTH = 512;

/** `PUT /settings` only: accepts an identity change that leaves every binding behind. Never stored. */
export const CONFIRM_UNBIND_ALL = 'confirm_unbind_all';

export interface SettingsRequest {
  patch: Partial<Settings>;
  /** Absent: keep; null: remove; a string: the new secret. */
  secret?: string | null;
  confirmUnbindAll: boolean;
  /**
   * With `networks` in the patch: the lists the body named. The others keep
   * their current value (a body naming only `deny` loosens nothing else).
   */
  networkLists?: NetworkPolicyField[];
}

/** Checks a `PUT /settings` body; anything wrong is a 422 naming the field. */
export function parseSettingsRequest(body: unknown, allowPrivateWebhook: boolean): SettingsRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw invalid('body', 'must be a JSON object');
  const {
    [WEBHOOK_SECRET_KEY]: secret,
    [CONFIRM_UNBIND_ALL]: confirm,
    ...rest
  } = body as Record<string, unknown>;
  const patch = validateSettingsPatch(rest);
  if (!patch.ok) throw invalid(patch.field, patch.message);

  const out: SettingsRequest = { patch: patch.value, confirmUnbindAll: false };
  if (patch.value.networks !== undefined) {
    const given = rest['networks'] as Record<string, unknown>;
    out.networkLists = NETWORK_POLICY_FIELDS.filter((f) => given[f] !== undefined);
  }
  if (WEBHOOK_SECRET_KEY in body) {
    if (
      secret !== null &&
      (typeof secret !== 'string' || secret.length === 0 || secret.length > MAX_SECRET_LENGTH)
    ) {
      throw invalid(WEBHOOK_SECRET_KEY, `must be a string of 1 to ${MAX_SECRET_LENGTH} characters, or null`);
    }
    out.secret = secret;
  }
  if (CONFIRM_UNBIND_ALL in body) {
    if (typeof confirm !== 'boolean') throw invalid(CONFIRM_UNBIND_ALL, 'must be true or false');
    out.confirmUnbindAll = confirm;
  }
  const url = patch.value.alert_webhook_url;
  if (typeof url === 'string') {
    try {
      checkWebhookUrl(url, allowPrivateWebhook);
    } catch (err) {
      throw invalid('alert_webhook_url', (err as Error).message);
    }
  }
  if (Object.keys(patch.value).length === 0 && out.secret === undefined)
    throw invalid('body', 'names no setting to change');
  return out;
}

/** The 409 for an unconfirmed identity change: what would happen, in numbers. */
export function wouldUnbindAll(r: UnbindRefusal): KeypinError {
  const which = r.fields.join(' and ');
  const many = r.bindings === 1 ? 'the 1 existing binding' : `all ${r.bindings} existing bindings`;
  const banned = r.banned > 0 ? ` (${r.banned} of them banned: those keys would be usable again)` : '';
  return new KeypinError(
    'would_unbind_all',
    `Changing ${which} changes how every key is identified: ${many}${banned} would stop matching, ` +
      `and each key would bind afresh on its next use, to the network it comes from. ` +
      `Send "${CONFIRM_UNBIND_ALL}": true with the change to go ahead.`,
    { bindings: r.bindings, banned: r.banned, fields: r.fields },
  );
}

/** An integer setting's schema, from its one shared range. */
const intSchema = (k: IntSetting) => ({
  type: 'integer',
  minimum: SETTING_LIMITS[k].min,
  maximum: SETTING_LIMITS[k].max,
});

const networkList = (description: string) => ({
  type: 'array',
  maxItems: MAX_POLICY_NETWORKS,
  items: { type: 'string', example: '10.0.0.0/8' },
  description,
});

const SETTING_SCHEMAS: Record<keyof Settings, object> = {
  failsafe_mode: { type: 'string', enum: SETTING_ENUMS.failsafe_mode },
  enforce_mode: { type: 'string', enum: SETTING_ENUMS.enforce_mode },
  alert_webhook_url: { type: 'string', format: 'uri', nullable: true },
  alert_webhook_format: {
    type: 'string',
    enum: SETTING_ENUMS.alert_webhook_format,
    description:
      'The body alerts are POSTed with (docs/alert-formats.md): standard (the contract JSON, Standard Webhooks ' +
      'headers) or what the Slack, Discord, Feishu, DingTalk or WeCom incoming webhook accepts. Feishu and ' +
      'DingTalk are signed with the webhook secret when one is set.',
  },
  alert_threshold_count: intSchema('alert_threshold_count'),
  alert_threshold_seconds: intSchema('alert_threshold_seconds'),
  archive_days: intSchema('archive_days'),
  bind_ipv4_prefix: intSchema('bind_ipv4_prefix'),
  bind_ipv6_prefix: intSchema('bind_ipv6_prefix'),
  auto_ban: { type: 'boolean' },
  token_normalize: {
    type: 'string',
    enum: SETTING_ENUMS.token_normalize,
    description: 'Decides key identity (see confirm_unbind_all).',
  },
  relay: {
    type: 'string',
    enum: SETTING_ENUMS.relay,
    description:
      'The relay behind KeyPin: newapi (New API, One API), litellm (LiteLLM proxy), openai (a plain upstream). Decides key identity.',
  },
  key_case: {
    type: 'string',
    enum: SETTING_ENUMS.key_case,
    description:
      'insensitive for a relay whose key store ignores case (New API on MySQL). Decides key identity.',
  },
  default_policy: {
    ...POLICY_SCHEMA,
    description: 'The policy of every binding without its own; null = none.',
  },
  networks: {
    type: 'object',
    additionalProperties: false,
    description:
      'The network policy, checked before the binding decision. Entries are IPs or canonical CIDRs ' +
      '(10.0.0.0/8, not 10.0.0.1/8). In PUT, a list left out keeps its current value.',
    properties: {
      allow: networkList(
        'When not empty, requests from outside every listed network → 403 network_not_allowed.',
      ),
      deny: networkList('Requests from inside a listed network → 403 network_denied.'),
      first_use_from: networkList(
        'When not empty, a key binds on first use only from inside these; elsewhere → 403 first_use_not_allowed.',
      ),
    },
  },
};

/** OpenAPI: the settings object as `GET`/`PUT /settings` answer it. */
export const SETTINGS_RESPONSE_SCHEMA = {
  type: 'object',
  required: [...SETTINGS_KEYS, 'alert_webhook_secret_set'],
  properties: { ...SETTING_SCHEMAS, alert_webhook_secret_set: { type: 'boolean' } },
};

/** OpenAPI: the `PUT /settings` body. */
export const SETTINGS_UPDATE_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    ...SETTING_SCHEMAS,
    [WEBHOOK_SECRET_KEY]: {
      type: 'string',
      minLength: 1,
      maxLength: MAX_SECRET_LENGTH,
      nullable: true,
      description: 'Write-only; null removes it.',
    },
    [CONFIRM_UNBIND_ALL]: {
      type: 'boolean',
      description:
        'Needed to change relay, token_normalize or key_case while bindings exist (otherwise 409 would_unbind_all): ' +
        'every existing binding stops matching and each key binds afresh on its next use. Not stored.',
    },
  },
};

/** OpenAPI: the `POST /settings/test-alert` answer (docs/alert-formats.md). */
export const TEST_ALERT_RESULT_SCHEMA = {
  type: 'object',
  required: [
    'format',
    'delivered',
    'status',
    'body',
    'body_truncated',
    'error',
    'would_retry',
    'duration_ms',
  ],
  properties: {
    format: { type: 'string', enum: [...SETTING_ENUMS.alert_webhook_format] },
    delivered: {
      type: 'boolean',
      description:
        'Judged as a real delivery: a 2xx, and no error code inside it (Feishu, DingTalk, WeCom, Slack).',
    },
    status: {
      type: 'integer',
      nullable: true,
      description: "The receiver's HTTP status; null without an answer.",
    },
    body: {
      type: 'string',
      description: `The start of the receiver's answer (at most ${TEST_ALERT_BODY_LIMIT} characters).`,
    },
    body_truncated: { type: 'boolean' },
    error: { type: 'string', nullable: true, description: 'Why it does not count as delivered.' },
    would_retry: { type: 'boolean', description: "Whether a real alert's delivery would try again." },
    duration_ms: { type: 'integer' },
  },
};

/** `POST /settings/test-alert` takes no input: an empty object or no body. */
export function checkTestAlertBody(body: unknown): void {
  if (body === undefined || body === null || body === '') return;
  if (typeof body !== 'object' || Array.isArray(body)) throw invalid('body', 'must be a JSON object');
  const [field] = Object.keys(body);
  if (field !== undefined) throw invalid(field, 'is not accepted: the test alert uses the saved settings');
}
