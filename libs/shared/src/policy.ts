/**
 * Key policies (docs/contract.md 9): how a key may be used once its network
 * is allowed. One definition of the fields and their limits, used by the
 * admin API, the console's form and the gateway when it reads stored values.
 */

/** A key's policy. Every field is optional; absent means unlimited. */
export interface KeyPolicy {
  /** Token bucket: sustained requests per second (fractions allowed: 0.5 = one every 2 s). */
  rate_per_second?: number;
  /** Token bucket size; defaults to `rate_per_second` (at least 1). Needs `rate_per_second`. */
  burst?: number;
  /** Requests per UTC calendar day. */
  requests_per_day?: number;
  /** Requests per UTC calendar month. */
  requests_per_month?: number;
  /** Requests of the key in flight at once (streams and WebSocket tunnels included). */
  max_concurrent?: number;
  /** Allowed model names: exact, or ending in `*` for a prefix. */
  models?: string[];
  /** The largest `max_tokens` / `max_completion_tokens` / `max_output_tokens` a request may ask for. */
  max_tokens?: number;
}

export const POLICY_FIELDS = [
  'rate_per_second',
  'burst',
  'requests_per_day',
  'requests_per_month',
  'max_concurrent',
  'models',
  'max_tokens',
] as const satisfies readonly (keyof KeyPolicy)[];

/** Each numeric field's inclusive range, and whether it must be a whole number. */
export const POLICY_LIMITS: {
  readonly [K in Exclude<keyof KeyPolicy, 'models'>]: { min: number; max: number; integer: boolean };
} = {
  rate_per_second: { min: 0.001, max: 1_000_000, integer: false },
  burst: { min: 1, max: 1_000_000, integer: true },
  requests_per_day: { min: 1, max: 1_000_000_000, integer: true },
  requests_per_month: { min: 1, max: 100_000_000_000, integer: true },
  max_concurrent: { min: 1, max: 100_000, integer: true },
  max_tokens: { min: 1, max: 100_000_000, integer: true },
};

/** At most this many entries in `models`, each at most `MODEL_NAME_MAX` characters. */
export const MODELS_MAX = 500;
export const MODEL_NAME_MAX = 200;

export type PolicyResult =
  { ok: true; value: KeyPolicy | null } | { ok: false; field: string; message: string };

/**
 * Validates a policy as the admin API receives it: `null` (no policy of its
 * own / no default), or an object with only the fields above. The field in
 * an error is named as the caller wrote it (`policy.models[2]`), under
 * `prefix`.
 */
export function validatePolicy(input: unknown, prefix = 'policy'): PolicyResult {
  if (input === null) return { ok: true, value: null };
  if (typeof input !== 'object' || Array.isArray(input)) {
    return { ok: false, field: prefix, message: 'must be an object or null' };
  }
  const out: KeyPolicy = {};
  const fields: readonly string[] = POLICY_FIELDS;
  for (const [field, value] of Object.entries(input as Record<string, unknown>)) {
    const name = `${prefix}.${field}`;
    if (!fields.includes(field)) return { ok: false, field: name, message: 'is not a policy field' };
    if (value === null || value === undefined) continue; // absent: unlimited
    if (field === 'models') {
      const r = validateModels(value, name);
      if (!r.ok) return r;
      out.models = r.models;
      continue;
    }
    const limits = POLICY_LIMITS[field as Exclude<keyof KeyPolicy, 'models'>];
    if (
      typeof value !== 'number' ||
      !Number.isFinite(value) ||
      (limits.integer && !Number.isInteger(value)) ||
      value < limits.min ||
      value > limits.max
    ) {
      const kind = limits.integer ? 'an integer' : 'a number';
      return { ok: false, field: name, message: `must be ${kind} from ${limits.min} to ${limits.max}` };
    }
    (out as Record<string, number>)[field] = value;
  }
  if (out.burst !== undefined && out.rate_per_second === undefined) {
    return { ok: false, field: `${prefix}.burst`, message: 'needs rate_per_second' };
  }
  return { ok: true, value: out };
}

function validateModels(
  value: unknown,
  field: string,
): { ok: true; models: string[] } | { ok: false; field: string; message: string } {
  if (!Array.isArray(value)) return { ok: false, field, message: 'must be a list of model names' };
  if (value.length > MODELS_MAX)
    return { ok: false, field, message: `must hold at most ${MODELS_MAX} names` };
  const seen = new Set<string>();
  for (let i = 0; i < value.length; i++) {
    const m: unknown = value[i];
    const f = `${field}[${i}]`;
    if (typeof m !== 'string' || m.length === 0 || m.length > MODEL_NAME_MAX) {
      return { ok: false, field: f, message: `must be a name of 1 to ${MODEL_NAME_MAX} characters` };
    }
    // Printable ASCII only: model names are compared byte for byte, and a
    // look-alike character must not make a name that matches nothing.
    if (!/^[\x21-\x7e]+$/.test(m)) {
      return { ok: false, field: f, message: 'must be printable ASCII without spaces' };
    }
    if (m.indexOf('*') !== -1 && m.indexOf('*') !== m.length - 1) {
      return { ok: false, field: f, message: "may hold '*' only as its last character (a prefix)" };
    }
    seen.add(m);
  }
  return { ok: true, models: [...seen] };
}

/** Whether a policy limits anything at all (`{}` is an explicit "unlimited"). */
export function isUnlimited(p: KeyPolicy | null | undefined): boolean {
  if (p === null || p === undefined) return true;
  for (const f of POLICY_FIELDS) if (p[f] !== undefined) return false;
  return true;
}

/** Whether `model` is allowed by a `models` list (exact, or `prefix*`). */
export function modelAllowed(models: readonly string[], model: string): boolean {
  for (const m of models) {
    if (m.endsWith('*') ? model.startsWith(m.slice(0, -1)) : model === m) return true;
  }
  return false;
}

/** `GET /bindings/:id/usage` (docs/contract.md 9). */
export interface BindingUsage {
  /** Requests forwarded today (UTC) and this calendar month. */
  today: number;
  month: number;
  /** The effective policy's quotas, or null when unlimited. */
  limit_day: number | null;
  limit_month: number | null;
  /** Extension: the policy that applies and where it comes from. */
  effective_policy: KeyPolicy | null;
  policy_source: 'binding' | 'default' | 'none';
}

/** `PUT /bindings/policy`. */
export interface SetBindingPolicyRequest {
  id: number;
  policy: KeyPolicy | null;
}
