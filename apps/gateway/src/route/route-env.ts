import { envReferences, type RouteSpec } from '@keypin/shared';

/** A header value naming a variable this process does not have. */
export interface MissingReference {
  /** The field holding the reference (`upstream_headers.authorization`, `require_header.value`), under `at`. */
  field: string;
  variable: string;
}

/**
 * The first `${env:NAME}` reference among a route's header values whose
 * variable is unset or empty in `env` (docs/contract.md 10), or null when
 * every one resolves. Only the fields present are looked at (a partial
 * route of `PUT /routes/:id` checks what it changes). Names the field and
 * the variable, never the value.
 */
export function missingEnvReference(
  spec: Pick<Partial<RouteSpec>, 'upstream_headers' | 'require_header'>,
  env: Readonly<Record<string, string | undefined>>,
  at = '',
): MissingReference | null {
  const field = (name: string) => (at === '' ? name : `${at}.${name}`);
  const unset = (value: string) => envReferences(value).find((name) => (env[name] ?? '') === '');
  for (const [name, value] of Object.entries(spec.upstream_headers ?? {})) {
    const variable = unset(value);
    if (variable !== undefined) return { field: field(`upstream_headers.${name}`), variable };
  }
  if (spec.require_header) {
    const variable = unset(spec.require_header.value);
    if (variable !== undefined) return { field: field('require_header.value'), variable };
  }
  return null;
}

/** The message for a missing reference: the variable's name only. */
export function missingReferenceMessage(variable: string): string {
  return `names \${env:${variable}}, but ${variable} is not set (or empty) in the gateway's environment`;
}
