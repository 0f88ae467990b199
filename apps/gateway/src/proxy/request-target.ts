/**
 * Request targets: which path a request really names (docs/contract.md 2.4).
 *
 * Reserved paths (`/health`, `/ready`, `/metrics`, `/admin/…`) are KeyPin's
 * own and never forwarded. A server resolves a path before it routes it
 * (percent-decoding, merging `//`, removing `.` and `..`, dropping `;`
 * parameters), so a check on the spelling alone lets `/admin%2Fapi`,
 * `//admin/`, `/v1/../admin/` or `/%6detrics` through. Here the path is
 * resolved the way the most lenient of those servers would, and a request
 * whose path *resolves* to a reserved one is refused unless it is spelled
 * exactly so (then KeyPin's own route serves it).
 */

/** Where a refused spelling is routed: no route has it, so the proxy answers 404. */
export const REFUSED_PATH = '/admin/.reserved';

/**
 * The request target in origin form (`/path?query`): an absolute-form target
 * (`http://host/path`) is cut to its path, `*` stays, anything else is null
 * (not a target KeyPin forwards).
 */
export function originForm(url: string): string | null {
  if (url.charCodeAt(0) === 47 /* / */) return url;
  if (url === '*') return url;
  const scheme = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.exec(url);
  if (scheme === null) return null;
  const rest = url.slice(scheme[0].length);
  const end = rest.search(/[/?#]/);
  if (end === -1) return '/';
  const tail = rest.slice(end);
  return tail.charCodeAt(0) === 47 ? tail : `/${tail}`;
}

/** The path part of an origin-form target (before `?`). */
export function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

/**
 * True when nothing in the path needs resolving: no `%`, `;`, `\`, `//` or
 * `/.`. Allocation-free; this is what almost every request takes.
 */
export function isPlainPath(url: string): boolean {
  let prev = 0;
  for (let i = 0; i < url.length; i++) {
    const c = url.charCodeAt(i);
    if (c === 63 /* ? */ || c === 35 /* # */) return true;
    if (c === 37 /* % */ || c === 59 /* ; */ || c === 92 /* \ */) return false;
    if (prev === 47 && (c === 47 || c === 46) /* . */) return false;
    prev = c;
  }
  return true;
}

const UNRESERVED_OR_SLASH = /%(2[dDeEfF]|3[0-9]|[46][1-9a-fA-F]|[57][0-9aA]|5[fF]|7[eE]|5[cC])/g;

/**
 * The path as a lenient server resolves it: percent-encoded unreserved
 * characters, `%2F` and `%5C` decoded, `\` taken as `/`, `;` parameters
 * dropped from each segment, empty segments merged, dot segments removed.
 */
export function resolvePath(path: string): string {
  const decoded = path.replace(UNRESERVED_OR_SLASH, (_, hex: string) =>
    String.fromCharCode(parseInt(hex, 16)),
  );
  const out: string[] = [];
  for (const raw of decoded.replaceAll('\\', '/').split('/')) {
    const semi = raw.indexOf(';');
    const seg = semi === -1 ? raw : raw.slice(0, semi);
    if (seg === '' || seg === '.') continue;
    if (seg === '..') out.pop();
    else out.push(seg);
  }
  const trailing = decoded.endsWith('/') && out.length > 0 ? '/' : '';
  return `/${out.join('/')}${trailing}`;
}

/** True for a resolved path KeyPin keeps for itself. */
export function isReservedPath(path: string): boolean {
  const p = path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
  if (p === '/health' || p === '/ready' || p === '/metrics' || p === '/admin') return true;
  return p.startsWith('/admin/');
}

export type TargetCheck = { ok: true; url: string } | { ok: false; reason: 'reserved' | 'bad_target' };

/**
 * Judges a request target before routing: the origin-form URL to route and
 * forward, or why it is refused. A reserved path spelled exactly is allowed
 * (KeyPin's own route serves it, or the proxy's reserved check answers 404).
 */
export function checkTarget(url: string): TargetCheck {
  if (url.charCodeAt(0) === 47 && isPlainPath(url)) return { ok: true, url };
  const origin = originForm(url);
  if (origin === null) return { ok: false, reason: 'bad_target' };
  if (origin === '*' || isPlainPath(origin)) return { ok: true, url: origin };
  const path = pathOf(origin);
  const resolved = resolvePath(path);
  if (isReservedPath(resolved) && resolved !== path) return { ok: false, reason: 'reserved' };
  return { ok: true, url: origin };
}

const ROOTS = ['/health', '/ready', '/metrics'];

/**
 * `isReservedPath` on an origin-form URL with its query, without slicing it
 * (the proxy's per-request check; the target was already resolved).
 */
export function isReservedTarget(url: string): boolean {
  if (url.startsWith('/admin')) return endsSegment(url, 6, true);
  for (const root of ROOTS) if (url.startsWith(root)) return endsSegment(url, root.length, false);
  return false;
}

/** True when `url` ends at `i` (or a query starts there); `/` too when `under` or when only a query follows it. */
function endsSegment(url: string, i: number, under: boolean): boolean {
  const c = url.charCodeAt(i);
  if (Number.isNaN(c) || c === 63 || c === 35) return true;
  if (c !== 47) return false;
  if (under) return true;
  const d = url.charCodeAt(i + 1);
  return Number.isNaN(d) || d === 63 || d === 35;
}

/** Fastify's `rewriteUrl`: the URL to route, REFUSED_PATH for a refused target. */
export function rewriteRequestTarget(req: { url?: string }): string {
  const url = req.url ?? '/';
  const t = checkTarget(url);
  return t.ok ? t.url : REFUSED_PATH;
}
