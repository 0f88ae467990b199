import { type Relay, type Route, type RouteInput, ROUTE_LIMITS, validateRoute } from '@keypin/shared';
import { ApiError } from '../../api/client';

/**
 * One row of the upstream-headers editor. `original` is the header's name
 * when the dialog opened (the route has it, with a value that is write-only
 * and never shown), or null for a row the admin added.
 */
export interface HeaderRow {
  /** A stable React key. */
  id: number;
  name: string;
  value: string;
  original: string | null;
}

/** The proxy token (`require_header`) as edited. */
export interface TokenDraft {
  name: string;
  value: string;
  /** Remove the route's token (edit only: `require_header: null`). */
  remove: boolean;
}

/** What the route dialog holds while someone types: text as typed. */
export interface RouteDraft {
  prefix: string;
  upstream: string;
  strip_prefix: boolean;
  /** '' = the `relay` setting (null). */
  relay: Relay | '';
  /** Seconds as typed; '' = the global timeouts (null). */
  timeout: string;
  headers: HeaderRow[];
  token: TokenDraft;
}

/**
 * Complaints by input: `prefix`, `upstream`, `relay`, `timeout_seconds`,
 * `headers` (the set as a whole), `headers.<row>.name`, `headers.<row>.value`,
 * `require_header.name`, `require_header.value`.
 */
export type RouteErrors = Partial<Record<string, string>>;

let nextRowId = 1;

export function headerRow(name = '', value = '', original: string | null = null): HeaderRow {
  return { id: nextRowId++, name, value, original };
}

/** A new route's empty form, or an existing route's form (its write-only values empty). */
export function draftOfRoute(route: Route | null): RouteDraft {
  if (route === null) {
    return {
      prefix: '',
      upstream: '',
      strip_prefix: false,
      relay: '',
      timeout: '',
      headers: [],
      token: { name: '', value: '', remove: false },
    };
  }
  return {
    prefix: route.prefix,
    upstream: route.upstream,
    strip_prefix: route.strip_prefix,
    relay: route.relay ?? '',
    timeout: route.timeout_seconds === null ? '' : String(route.timeout_seconds),
    headers: storedHeaderRows(route),
    token: { name: route.require_header_name ?? '', value: '', remove: false },
  };
}

/** The route's headers as rows: names only, values kept unless re-entered. */
export function storedHeaderRows(route: Route): HeaderRow[] {
  return route.upstream_header_names.map((n) => headerRow(n, '', n));
}

const blankRow = (r: HeaderRow) => r.original === null && r.name.trim() === '' && r.value === '';

/**
 * True when the admin changed the set of upstream headers: added, removed or
 * renamed one, or typed a value. `PUT /routes/:id` replaces the whole set, so
 * then every value must be sent, the kept ones re-entered. A new route's
 * headers are always "changed" (all of them are sent).
 */
export function headersChanged(draft: RouteDraft, route: Route | null): boolean {
  if (route === null) return true;
  const rows = draft.headers.filter((r) => !blankRow(r));
  if (rows.length !== route.upstream_header_names.length) return true;
  return rows.some(
    (r) => r.original === null || r.value !== '' || r.name.trim().toLowerCase() !== r.original.toLowerCase(),
  );
}

/** The upstream without the trailing slashes the API drops (so "https://x/" is no change to "https://x"). */
function upstreamOf(text: string): string {
  return text.trim().replace(/\/+$/, '');
}

/** A validator's message about a field, as a sentence under that field. */
function sentence(label: string, message: string): string {
  return `${label} ${message.replace(/, or null$/, '')}.`;
}

/** The first complaint of `validateRoute` about `input` (partial), or null. */
function complaint(input: Partial<RouteInput>): { field: string; message: string } | null {
  const r = validateRoute(input, '', true);
  return r.ok ? null : { field: r.field, message: r.message };
}

/** A header name's complaint (checked with a stand-in value), or null. */
function headerNameError(name: string): string | null {
  const c = complaint({ upstream_headers: { [name]: 'x' } });
  return c === null ? null : sentence(`Header "${name}"`, c.message);
}

/** A header value's complaint (checked under a stand-in name), or null. */
function headerValueError(value: string): string | null {
  const c = complaint({ upstream_headers: { 'x-value-check': value } });
  return c === null ? null : sentence('The value', c.message);
}

export const REENTER_VALUE =
  'Enter the value again: saving replaces every header, and a stored value cannot be read back.';

export interface RouteCheck {
  /** The body to send (`POST /routes`, or `PUT /routes/:id` with the changed fields), or null while incomplete or invalid. */
  body: RouteInput | Partial<RouteInput> | null;
  errors: RouteErrors;
  /** Edit: how many fields the body changes. */
  changed: number;
  /** The upstream headers will be replaced as a whole (every value must be given). */
  replacingHeaders: boolean;
  /** The route's proxy token is kept as it is (its value left empty). */
  keepingToken: boolean;
}

/**
 * Checks the form with the shared `validateRoute`, the admin API's own rules,
 * field by field (so every field shows its own complaint as it is typed), and
 * builds the body: for a new route every field, for an existing one only what
 * changed, the headers only when their set changed (then all of them, each
 * value given) and the proxy token only when replaced or removed.
 */
export function checkRoute(draft: RouteDraft, route: Route | null): RouteCheck {
  const errors: RouteErrors = {};
  let missing = false;
  const body: Partial<RouteInput> = {};

  const prefix = draft.prefix.trim();
  if (prefix === '') missing = true;
  else {
    const c = complaint({ prefix });
    if (c) errors['prefix'] = sentence('The prefix', c.message);
    else if (route === null || prefix !== route.prefix) body.prefix = prefix;
  }

  const upstream = draft.upstream.trim();
  if (upstream === '') missing = true;
  else {
    const c = complaint({ upstream });
    if (c) errors['upstream'] = sentence('The upstream', c.message);
    else if (route === null || upstreamOf(upstream) !== route.upstream) body.upstream = upstream;
  }

  if (route === null || draft.strip_prefix !== route.strip_prefix) body.strip_prefix = draft.strip_prefix;

  const relay = draft.relay === '' ? null : draft.relay;
  if (route === null || relay !== route.relay) body.relay = relay;

  const t = draft.timeout.trim();
  const timeout = t === '' ? null : /^\d+$/.test(t) ? Number(t) : Number.NaN;
  const tc = complaint({ timeout_seconds: timeout });
  if (tc) errors['timeout_seconds'] = sentence('The timeout', tc.message);
  else if (route === null || timeout !== route.timeout_seconds) body.timeout_seconds = timeout;

  // Upstream headers: all of them, or (edit, unchanged) none.
  const replacingHeaders = headersChanged(draft, route);
  const names: string[] = [];
  if (replacingHeaders) {
    const headers: Record<string, string> = {};
    const seen = new Set<string>();
    draft.headers.forEach((row, i) => {
      if (blankRow(row)) return;
      const name = row.name.trim();
      const lower = name.toLowerCase();
      if (name === '') {
        errors[`headers.${i}.name`] = 'Enter the header’s name, or remove the row.';
      } else {
        const e = headerNameError(name);
        if (e) errors[`headers.${i}.name`] = e;
        else if (seen.has(lower)) errors[`headers.${i}.name`] = `Header "${name}" is given twice.`;
        seen.add(lower);
        names.push(lower);
      }
      if (row.value === '') {
        if (row.original !== null) errors[`headers.${i}.value`] = REENTER_VALUE;
        else missing = true;
      } else {
        const e = headerValueError(row.value);
        if (e) errors[`headers.${i}.value`] = e;
      }
      headers[name] = row.value;
    });
    if (names.length > ROUTE_LIMITS.headers) errors['headers'] = `At most ${ROUTE_LIMITS.headers} headers.`;
    if (route === null) {
      if (names.length > 0) body.upstream_headers = headers;
    } else body.upstream_headers = headers;
  } else if (route !== null) {
    names.push(...route.upstream_header_names.map((n) => n.toLowerCase()));
  }

  // The proxy token: kept, replaced, removed, or (new route) set or not.
  const stored = route?.require_header_name ?? null;
  const tokenName = draft.token.name.trim();
  const tokenValue = draft.token.value;
  let keepingToken = false;
  if (stored !== null && draft.token.remove) {
    body.require_header = null;
  } else if (tokenName === '' && tokenValue === '') {
    if (stored !== null)
      errors['require_header.name'] = 'Enter the header’s name, or remove the proxy token.';
  } else if (stored !== null && tokenValue === '' && tokenName.toLowerCase() === stored.toLowerCase()) {
    keepingToken = true;
  } else {
    if (tokenName === '') {
      errors['require_header.name'] = 'Enter the header that carries the token.';
    } else {
      const e = headerNameError(tokenName);
      if (e) errors['require_header.name'] = e;
      else if (names.includes(tokenName.toLowerCase())) {
        errors['require_header.name'] = `Header "${tokenName}" is also set upstream: choose another name.`;
      }
    }
    if (tokenValue === '') {
      if (stored !== null)
        errors['require_header.value'] = 'Enter the token again: a new header name needs it.';
      else missing = true;
    } else {
      const e = headerValueError(tokenValue);
      if (e) errors['require_header.value'] = e;
    }
    body.require_header = { name: tokenName, value: tokenValue };
  }
  if (keepingToken && stored !== null && names.includes(stored.toLowerCase())) {
    errors['require_header.name'] = `Header "${stored}" is also set upstream: choose another name.`;
  }

  const ok = !missing && Object.keys(errors).length === 0;
  if (ok) {
    // The whole body once more, exactly as the API will check it.
    const whole = route === null ? validateRoute(body, '') : validateRoute(body, '', true);
    if (!whole.ok) {
      const key = errorKeyOf(whole.field, draft) ?? 'form';
      errors[key] = whole.message;
    }
  }
  const valid = ok && Object.keys(errors).length === 0;
  return {
    body: valid ? body : null,
    errors,
    changed: Object.keys(body).length,
    replacingHeaders: replacingHeaders && route !== null,
    keepingToken,
  };
}

/**
 * The input a field named by the validator or the API belongs to
 * (`prefix`, `route.upstream_headers.Authorization`, `require_header.value`),
 * or null when the form has none.
 */
export function errorKeyOf(field: string, draft: RouteDraft, message = ''): string | null {
  const f = field.replace(/^(route|body)\./, '');
  if (['prefix', 'upstream', 'relay', 'timeout_seconds', 'strip_prefix'].includes(f)) return f;
  if (f === 'upstream_headers') return 'headers';
  if (f.startsWith('upstream_headers.')) {
    const name = f.slice('upstream_headers.'.length).toLowerCase();
    const i = draft.headers.findIndex((r) => r.name.trim().toLowerCase() === name);
    if (i < 0) return 'headers';
    const aboutName = /header name|set by KeyPin|given twice/.test(message);
    return `headers.${i}.${aboutName ? 'name' : 'value'}`;
  }
  if (f === 'require_header' || f === 'require_header.name') return 'require_header.name';
  if (f === 'require_header.value') return 'require_header.value';
  return null;
}

/**
 * The API's refusal as a complaint under the input it names (a 422 with
 * `field`, or a conflict about the prefix), in the API's own words. Empty
 * when it names nothing the form has: then it is shown under the form.
 */
export function apiRouteErrors(err: unknown, draft: RouteDraft): RouteErrors {
  if (!(err instanceof ApiError)) return {};
  if (err.field !== null) {
    const key = errorKeyOf(err.field, draft, err.message);
    return key === null ? {} : { [key]: err.message };
  }
  if (err.status === 409 && /prefix/i.test(err.message)) return { prefix: err.message };
  return {};
}
