import { isUnlimited, type KeyPolicy, modelAllowed } from '@keypin/shared';

export type PolicySource = 'binding' | 'default';

/**
 * A policy as the hot path uses it: built once per stored value (a binding's
 * policy when it is cached, the default when the settings change), never
 * per request. 0 means "no limit" for every number.
 */
export interface CompiledPolicy {
  readonly source: PolicySource;
  readonly policy: KeyPolicy;
  readonly rate: number;
  readonly burst: number;
  readonly perDay: number;
  readonly perMonth: number;
  readonly maxConcurrent: number;
  /** null: any model. */
  readonly models: readonly string[] | null;
  readonly maxTokens: number;
  /** Whether a request must be looked into (models or max_tokens). */
  readonly readsRequest: boolean;
  /** Whether a request is counted (rate, quota or concurrency). */
  readonly counts: boolean;
  /** Whether forwarded answers carry `x-ratelimit-*-requests` (rate or quota). */
  readonly announces: boolean;
}

/** null when the policy limits nothing (absent, or `{}`). */
export function compilePolicy(p: KeyPolicy | null | undefined, source: PolicySource): CompiledPolicy | null {
  if (p === null || p === undefined || isUnlimited(p)) return null;
  const rate = p.rate_per_second ?? 0;
  const burst = rate > 0 ? (p.burst ?? Math.max(1, rate)) : 0;
  const perDay = p.requests_per_day ?? 0;
  const perMonth = p.requests_per_month ?? 0;
  const maxConcurrent = p.max_concurrent ?? 0;
  const models = p.models ?? null;
  const maxTokens = p.max_tokens ?? 0;
  return {
    source,
    policy: p,
    rate,
    burst,
    perDay,
    perMonth,
    maxConcurrent,
    models,
    maxTokens,
    readsRequest: models !== null || maxTokens > 0,
    counts: rate > 0 || perDay > 0 || perMonth > 0 || maxConcurrent > 0,
    announces: rate > 0 || perDay > 0 || perMonth > 0,
  };
}

/** The first model of `names` the policy does not allow, or null when all are allowed. */
export function firstRefusedModel(policy: CompiledPolicy, names: readonly string[]): string | null {
  if (policy.models === null) return null;
  for (const n of names) if (!modelAllowed(policy.models, n)) return n;
  return null;
}
