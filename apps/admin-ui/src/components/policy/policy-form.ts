import { type KeyPolicy, POLICY_FIELDS, POLICY_LIMITS, validatePolicy } from '@keypin/shared';
import { ApiError } from '../../api/client';

/** A policy field (docs/contract.md 9). */
export type PolicyField = (typeof POLICY_FIELDS)[number];
export type NumericPolicyField = Exclude<PolicyField, 'models'>;

/** The form's text for every field: numbers as typed, models one per line. '' = unlimited. */
export type PolicyDraft = Record<PolicyField, string>;

/**
 * A policy as edited: `custom` false is `null` (the key follows the default
 * policy; in Settings, no default policy), true is the fields' policy, where
 * every empty field is unlimited (so all empty is `{}`, explicitly unlimited).
 */
export interface PolicyChoice {
  custom: boolean;
  fields: PolicyDraft;
}

export type PolicyErrors = Partial<Record<PolicyField, string>>;

/** How each field is named and explained, in the order the form shows them. */
export const POLICY_FIELD_INFO: Record<PolicyField, { label: string; help: string; unit?: string }> = {
  rate_per_second: {
    label: 'Rate per second',
    help: 'Sustained requests per second. Decimals allowed: 0.5 is one request every 2 seconds. Over it: 429 rate_limited.',
    unit: 'req/s',
  },
  burst: {
    label: 'Burst',
    help: 'Requests that may arrive at once before the rate applies. Empty: the rate (at least 1). Needs a rate.',
    unit: 'requests',
  },
  requests_per_day: {
    label: 'Requests per day',
    help: 'Quota per UTC calendar day. Once used up: 429 quota_exceeded until midnight UTC.',
    unit: 'requests',
  },
  requests_per_month: {
    label: 'Requests per month',
    help: 'Quota per UTC calendar month.',
    unit: 'requests',
  },
  max_concurrent: {
    label: 'Max concurrent requests',
    help: 'Requests of the key in flight at once, streams included.',
    unit: 'requests',
  },
  models: {
    label: 'Allowed models',
    help:
      'One model name per line. End a name with * to allow every model starting with it ' +
      '(gpt-4o* allows gpt-4o-mini). Any other model: 403 model_not_allowed.',
  },
  max_tokens: {
    label: 'Max tokens per request',
    help: 'The largest max_tokens (or max_completion_tokens / max_output_tokens) a request may ask for.',
    unit: 'tokens',
  },
};

/** What an empty field means, in a few words. */
export const UNLIMITED_TEXT: Record<PolicyField, string> = {
  rate_per_second: 'No rate limit',
  burst: 'Same as the rate',
  requests_per_day: 'No daily quota',
  requests_per_month: 'No monthly quota',
  max_concurrent: 'No limit',
  models: 'Every model',
  max_tokens: 'No cap',
};

export const NUMERIC_POLICY_FIELDS = POLICY_FIELDS.filter((f): f is NumericPolicyField => f !== 'models');

export const EMPTY_POLICY_DRAFT: PolicyDraft = {
  rate_per_second: '',
  burst: '',
  requests_per_day: '',
  requests_per_month: '',
  max_concurrent: '',
  models: '',
  max_tokens: '',
};

export function draftOfPolicy(p: KeyPolicy | null | undefined): PolicyDraft {
  const d = { ...EMPTY_POLICY_DRAFT };
  if (!p) return d;
  for (const f of NUMERIC_POLICY_FIELDS) {
    const v = p[f];
    if (v !== undefined) d[f] = String(v);
  }
  if (p.models) d.models = p.models.join('\n');
  return d;
}

export function choiceOf(p: KeyPolicy | null | undefined): PolicyChoice {
  return { custom: p !== null && p !== undefined, fields: draftOfPolicy(p) };
}

/** The names in the models box: one per line (commas also separate), blanks dropped. */
export function modelNames(text: string): string[] {
  return text
    .split(/[\n,]/)
    .map((m) => m.trim())
    .filter((m) => m !== '');
}

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

/** A field's typed text as the API would receive it: undefined when empty, NaN when not a number. */
function numberOf(text: string): number | undefined {
  const t = text.trim().replace(/[\s_]/g, '');
  if (t === '') return undefined;
  return NUMBER.test(t) ? Number(t) : Number.NaN;
}

/** The field of a validator's or the API's field name: `policy.models[2]` → `models`. */
export function policyFieldOf(field: string, prefix: string): PolicyField | null {
  if (!field.startsWith(`${prefix}.`)) return null;
  const name = /^[a-z_]+/.exec(field.slice(prefix.length + 1))?.[0];
  return (POLICY_FIELDS as readonly string[]).includes(name ?? '') ? (name as PolicyField) : null;
}

function sentence(f: PolicyField, message: string): string {
  return `${POLICY_FIELD_INFO[f].label} ${message}.`;
}

/** A message of the shared validator, in the form's words. */
function explain(f: PolicyField, message: string, models: string[], field: string): string {
  if (f === 'burst' && message === 'needs rate_per_second') {
    return 'Burst needs a rate per second: set one, or leave burst empty.';
  }
  if (f === 'models') {
    const i = /\[(\d+)\]$/.exec(field)?.[1];
    const name = i === undefined ? undefined : models[Number(i)];
    if (name !== undefined) return `Model "${name}" ${message}.`;
  }
  return sentence(f, message);
}

export interface PolicyCheck {
  /** The policy to send (null for "no policy of its own" / "no default"), or undefined while invalid. */
  policy: KeyPolicy | null | undefined;
  errors: PolicyErrors;
}

/**
 * The edited policy as the API will receive it, and a complaint per field,
 * each checked with the API's own validator (`validatePolicy`).
 */
export function checkPolicy(choice: PolicyChoice, prefix = 'policy'): PolicyCheck {
  if (!choice.custom) return { policy: null, errors: {} };
  const raw: Record<string, unknown> = {};
  for (const f of NUMERIC_POLICY_FIELDS) raw[f] = numberOf(choice.fields[f]);
  const models = modelNames(choice.fields.models);
  if (models.length > 0) raw['models'] = models;

  const errors: PolicyErrors = {};
  // Each field alone, so that every bad field shows its complaint at once
  // (burst's range beside some rate: whether it has one is checked next).
  for (const f of POLICY_FIELDS) {
    if (raw[f] === undefined) continue;
    const alone = f === 'burst' ? { rate_per_second: 1, burst: raw[f] } : { [f]: raw[f] };
    const r = validatePolicy(alone, prefix);
    if (!r.ok) errors[f] = explain(f, r.message, models, r.field);
  }
  // The rule between fields: burst needs a rate.
  if (errors.burst === undefined && raw['burst'] !== undefined && raw['rate_per_second'] === undefined) {
    const r = validatePolicy({ burst: raw['burst'] }, prefix);
    if (!r.ok) errors.burst = explain('burst', r.message, models, r.field);
  }
  if (Object.keys(errors).length > 0) return { policy: undefined, errors };
  // The whole policy, as the API will check it.
  const whole = validatePolicy(raw, prefix);
  if (!whole.ok) {
    const f = policyFieldOf(whole.field, prefix);
    return { policy: undefined, errors: f ? { [f]: explain(f, whole.message, models, whole.field) } : {} };
  }
  return { policy: whole.value, errors };
}

/**
 * A refusal of the API naming a field of this policy (`policy.max_tokens`,
 * `default_policy.models[2]`): the API's own message, under that field.
 */
export function apiPolicyErrors(err: unknown, prefix = 'policy'): PolicyErrors {
  if (!(err instanceof ApiError) || err.code !== 'validation_failed' || err.field === null) return {};
  const f = policyFieldOf(err.field, prefix);
  return f ? { [f]: err.message } : {};
}

/** Whether two policies are the same (as the API would store them). */
export function samePolicy(a: KeyPolicy | null | undefined, b: KeyPolicy | null | undefined): boolean {
  if (a === null || a === undefined || b === null || b === undefined) return (a ?? null) === (b ?? null);
  return POLICY_FIELDS.every((f) =>
    f === 'models' ? (a.models ?? []).join('\n') === (b.models ?? []).join('\n') : a[f] === b[f],
  );
}

/** `1000000` → `1,000,000`; fractions kept. */
export function formatLimit(n: number): string {
  return n.toLocaleString(undefined, { maximumFractionDigits: 3 });
}

/** One field's value as shown when reading a policy. */
export function policyValueText(p: KeyPolicy, f: PolicyField): string {
  if (f === 'models') return p.models && p.models.length > 0 ? p.models.join(', ') : UNLIMITED_TEXT.models;
  const v = p[f];
  if (v === undefined) {
    if (f === 'burst' && p.rate_per_second !== undefined) {
      return `${formatLimit(Math.max(1, p.rate_per_second))} (the rate)`;
    }
    return f === 'burst' ? '—' : UNLIMITED_TEXT[f];
  }
  const unit = f === 'rate_per_second' ? 'per second' : f === 'max_tokens' ? 'tokens' : '';
  return unit ? `${formatLimit(v)} ${unit}` : formatLimit(v);
}

/** The range a numeric field accepts, for its helper text. */
export function rangeText(f: NumericPolicyField): string {
  const l = POLICY_LIMITS[f];
  return `${formatLimit(l.min)} to ${formatLimit(l.max)}${l.integer ? '' : ', decimals allowed'}`;
}
