import { invalid } from './validation';

/**
 * Path and query parameters of the admin API, read one way everywhere:
 * a parameter given twice, of the wrong form or unknown to the route is a
 * 422 naming it (DTOs cover bodies; these cover what DTOs do not).
 */

/** A path id: a positive integer (ids start at 1). */
export function parseId(raw: string, field = 'id'): number {
  if (!/^[1-9]\d{0,14}$/.test(raw)) throw invalid(field, 'must be a positive integer');
  return Number(raw);
}

/** Refuses query parameters the route does not know. */
export function onlyParams(query: Record<string, unknown>, known: ReadonlySet<string>): void {
  for (const field of Object.keys(query)) {
    if (!known.has(field)) throw invalid(field, 'is not a parameter of this route');
  }
}

/** One optional query parameter: absent or empty → null; repeated → 422. */
export function queryOne(query: Record<string, unknown>, field: string): string | null {
  const v = query[field];
  if (v === undefined || v === '') return null;
  if (typeof v !== 'string') throw invalid(field, 'must be given once');
  return v;
}

/** One optional query parameter from a closed set. */
export function queryOneOf<T extends string>(
  query: Record<string, unknown>,
  field: string,
  values: readonly T[],
): T | null {
  const v = queryOne(query, field);
  if (v === null) return null;
  if (!(values as readonly string[]).includes(v)) throw invalid(field, `must be one of ${values.join(', ')}`);
  return v as T;
}
