import { MODEL_NAME_MAX, MODELS_MAX, POLICY_LIMITS } from '@keypin/shared';

/** OpenAPI: a key policy (docs/contract.md 9), from the shared limits. */
export const POLICY_SCHEMA = {
  type: 'object' as const,
  nullable: true,
  additionalProperties: false,
  description: 'Every field optional; absent means unlimited. `{}` is an explicit "no limits".',
  properties: {
    ...Object.fromEntries(
      Object.entries(POLICY_LIMITS).map(([k, l]) => [
        k,
        { type: l.integer ? ('integer' as const) : ('number' as const), minimum: l.min, maximum: l.max },
      ]),
    ),
    models: {
      type: 'array' as const,
      maxItems: MODELS_MAX,
      items: { type: 'string' as const, minLength: 1, maxLength: MODEL_NAME_MAX },
      description: 'Allowed model names: exact, or ending in * for a prefix.',
    },
  },
};
