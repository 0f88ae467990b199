import { createHash, timingSafeEqual } from 'node:crypto';
import {
  KEY_HEADER_PLACES,
  type KeyRules,
  keyRulesOf,
  longestPrefixMatch,
  type Relay,
  resolveEnvReferences,
  type Settings,
} from '@keypin/shared';
import type { Logger } from 'pino';
import type { Forwarder } from '../proxy/forwarder';
import { replaceHeaders } from '../proxy/forwarder';
import { isKeyProtocol } from '../proxy/request-head';
import { isPlainPath, pathOf, resolvePath } from '../proxy/request-target';
import type { WebSocketTunnel } from '../proxy/websocket-tunnel';
import type { SealedSecret } from '../settings/secret-box';
import type { RouteSource, StoredRoute } from './route.types';

/** Where a route's requests go: one keep-alive pool and one tunnel factory per upstream and timeout. */
export interface Upstream {
  readonly forwarder: Forwarder;
  readonly tunnel: WebSocketTunnel;
}

/** Builds the upstream for a URL; `timeoutMs` null: the global timeouts. */
export type UpstreamFactory = (url: URL, timeoutMs: number | null) => Upstream;

/**
 * A route ready for the hot path: everything a request needs is computed
 * here, once per change, so that choosing and applying a route allocates
 * nothing beyond the forwarded path itself.
 */
export interface CompiledRoute {
  /** null: `DOWNSTREAM_URL` (no route matched). */
  readonly id: number | null;
  /** '' for `DOWNSTREAM_URL`. */
  readonly prefix: string;
  readonly strip: boolean;
  readonly upstream: Upstream;
  /** Whose key parsing applies; null: the `relay` setting. */
  readonly relay: Relay | null;
  /** Flat lower-case [name, value, …] to set upstream (values resolved), or null. */
  readonly setHeaders: readonly string[] | null;
  /** `setHeaders` holds a header KeyPin reads keys from: every client key header (and `?key=`) is removed upstream. */
  readonly replacesKey: boolean;
  /** The proxy token: its header name and the SHA-256 of its value. */
  readonly token: { readonly name: string; readonly digest: Buffer } | null;
  /** Why this route cannot serve on this instance (a missing environment variable), or null. */
  readonly broken: string | null;
  /** The key rules last built for a settings object (per route: its relay may differ). */
  rulesOf: Settings | null;
  rules: KeyRules;
}

export interface RouteTableOptions {
  /** Opens a sealed header value (null when it cannot: another HMAC_SECRET). */
  open(sealed: SealedSecret): string | null;
  /** Where `${env:NAME}` references are resolved. */
  env: Readonly<Record<string, string | undefined>>;
  /** How often the table is rebuilt even without a change notice (a missed notice heals). */
  refreshMs: number;
}

const DEFAULT_RULES: KeyRules = { relay: 'newapi', tokenNormalize: 'newapi', keyCase: 'sensitive' };

/**
 * The routing table (docs/contract.md 10): the stored routes compiled and
 * sorted longest prefix first, rebuilt as a whole on every change (the
 * change feed calls `reload`) and swapped in at once. Upstreams are kept
 * across rebuilds while some route still uses them, so a change does not
 * drop the keep-alive connections of the routes it did not touch.
 */
export class RouteTable {
  private routes: CompiledRoute[] = [];
  private readonly upstreams = new Map<string, Upstream>();
  private reloading: Promise<void> | null = null;
  private again = false;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  /** Routes (id and version) already warned about: a rebuild does not repeat the warning. */
  private readonly warned = new Set<string>();

  constructor(
    private readonly source: RouteSource,
    /** `DOWNSTREAM_URL` (or the demo upstream): where requests no route matches go; null → 404 `no_route`. */
    readonly fallback: CompiledRoute | null,
    private readonly makeUpstream: UpstreamFactory,
    private readonly options: RouteTableOptions,
    private readonly logger: Logger,
  ) {}

  /** The fallback route for an upstream (DOWNSTREAM_URL). */
  static fallbackFor(upstream: Upstream): CompiledRoute {
    return {
      id: null,
      prefix: '',
      strip: false,
      upstream,
      relay: null,
      setHeaders: null,
      replacesKey: false,
      token: null,
      broken: null,
      rulesOf: null,
      rules: DEFAULT_RULES,
    };
  }

  get size(): number {
    return this.routes.length;
  }

  /** Every upstream in use (for shutdown and the tunnels' count). */
  get allUpstreams(): Upstream[] {
    const out = [...this.upstreams.values()];
    if (this.fallback !== null) out.push(this.fallback.upstream);
    return out;
  }

  /** Loads the table now and keeps it fresh. Rejects when the first load fails. */
  async start(): Promise<void> {
    await this.reload();
    this.timer = setInterval(() => void this.reload().catch(() => undefined), this.options.refreshMs);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearInterval(this.timer);
  }

  /**
   * The route for an origin-form target: the longest matching prefix, else
   * the fallback, else null. A path a server would resolve (`%2F`, `..`) is
   * matched as resolved, so a spelling cannot reach another route's upstream
   * than its resolved path names.
   */
  match(url: string): CompiledRoute | null {
    const routes = this.routes;
    if (routes.length === 0) return this.fallback;
    return longestPrefixMatch(routes, isPlainPath(url) ? url : resolvedTarget(url)) ?? this.fallback;
  }

  /** The path (and query) sent upstream for `url` on `route`. */
  upstreamPath(route: CompiledRoute, url: string): string {
    let target = url;
    if (route.strip) {
      if (!isPlainPath(url)) target = resolvedTarget(url);
      target = target.slice(route.prefix.length - 1);
      if (target.charCodeAt(0) !== 47 /* / */) target = `/${target}`;
    }
    if (route.replacesKey) target = withoutKeyParams(target);
    return route.upstream.forwarder.pathFor(target);
  }

  /** Rebuilds the table from the store. Concurrent calls share one rebuild (and one more follows if asked meanwhile). */
  reload(): Promise<void> {
    if (this.reloading !== null) {
      this.again = true;
      return this.reloading;
    }
    this.reloading = (async () => {
      try {
        do {
          this.again = false;
          this.swap(await this.source.listAll());
        } while (this.again && !this.stopped);
      } finally {
        this.reloading = null;
      }
    })();
    return this.reloading;
  }

  private swap(stored: StoredRoute[]): void {
    const used = new Map<string, Upstream>();
    const next: CompiledRoute[] = [];
    for (const s of stored) {
      const key = `${s.upstream} ${s.timeout_seconds ?? ''}`;
      let upstream = used.get(key) ?? this.upstreams.get(key);
      if (upstream === undefined) {
        upstream = this.makeUpstream(
          new URL(s.upstream),
          s.timeout_seconds === null ? null : s.timeout_seconds * 1000,
        );
      }
      used.set(key, upstream);
      next.push(this.compile(s, upstream));
    }
    next.sort((a, b) => b.prefix.length - a.prefix.length);
    this.routes = next;
    // Pools no route uses any more finish what they carry, then close.
    for (const [key, upstream] of this.upstreams) {
      if (!used.has(key)) void upstream.forwarder.close().catch(() => undefined);
    }
    this.upstreams.clear();
    for (const [key, upstream] of used) this.upstreams.set(key, upstream);
  }

  private compile(s: StoredRoute, upstream: Upstream): CompiledRoute {
    let broken: string | null = null;
    const reveal = (sealed: SealedSecret, what: string): string => {
      const text = this.options.open(sealed);
      if (text === null) {
        broken ??= `${what} cannot be decrypted (was HMAC_SECRET changed?)`;
        return '';
      }
      const r = resolveEnvReferences(text, this.options.env);
      if (!r.ok) {
        broken ??= `${what} names the environment variable ${r.missing}, which is not set here`;
        return '';
      }
      return r.value;
    };
    let setHeaders: string[] | null = null;
    let replacesKey = false;
    for (const [name, sealed] of Object.entries(s.upstream_headers)) {
      (setHeaders ??= []).push(name, reveal(sealed, `upstream header ${name}`));
      if (KEY_HEADER_PLACES.has(name)) replacesKey = true;
    }
    let token: CompiledRoute['token'] = null;
    if (s.require_header !== null) {
      const value = reveal(s.require_header.value, `proxy token ${s.require_header.name}`);
      token = { name: s.require_header.name, digest: sha256(value) };
    }
    if (broken !== null) {
      this.logger.error(
        { route: s.id, prefix: s.prefix, problem: broken },
        'route cannot serve: answering 502',
      );
    }
    const version = `${s.id} ${s.updated_at.getTime()}`;
    if (replacesKey && token === null && !this.warned.has(version)) {
      this.warned.add(version);
      this.logger.warn(
        { route: s.id, prefix: s.prefix },
        'route sends a server-side provider key and needs no proxy token: any key binds on its first use there; ' +
          'set require_header or restrict first use with the network policy (docs/routes.md)',
      );
    }
    return {
      id: s.id,
      prefix: s.prefix,
      strip: s.strip_prefix,
      upstream,
      relay: s.relay,
      setHeaders,
      replacesKey,
      token,
      broken,
      rulesOf: null,
      rules: DEFAULT_RULES,
    };
  }
}

/** The key rules on `route` under `settings` (built once per settings change and route). */
export function keyRulesOn(route: CompiledRoute, settings: Settings): KeyRules {
  if (route.rulesOf !== settings) {
    const rules = keyRulesOf(settings);
    if (route.relay !== null) rules.relay = route.relay;
    route.rules = rules;
    route.rulesOf = settings;
  }
  return route.rules;
}

/**
 * Whether the request carries the route's proxy token: exactly one line of
 * its header, equal in constant time (both sides hashed first, so neither
 * the length nor the content leaks through timing).
 */
export function hasProxyToken(route: CompiledRoute, rawHeaders: readonly string[]): boolean {
  const t = route.token!;
  let value: string | null = null;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length !== t.name.length || name.toLowerCase() !== t.name) continue;
    if (value !== null) return false; // two lines: refused rather than guessed
    value = rawHeaders[i + 1]!;
  }
  return value !== null && timingSafeEqual(sha256(value), t.digest);
}

/**
 * The route's changes to the headers sent upstream, made once the request
 * is judged: the proxy token removed, the client's key headers (and keys
 * offered as WebSocket subprotocols) removed when the route sends a key of
 * its own, then the route's headers set.
 */
export function applyRouteHeaders(route: CompiledRoute, headers: string[]): void {
  if (route.token !== null || route.replacesKey) {
    const token = route.token?.name ?? null;
    let w = 0;
    for (let i = 0; i + 1 < headers.length; i += 2) {
      const lower = headers[i]!.toLowerCase();
      if (lower === token || (route.replacesKey && KEY_HEADER_PLACES.has(lower))) continue;
      let value = headers[i + 1]!;
      if (route.replacesKey && lower === 'sec-websocket-protocol') {
        // A key offered as a subprotocol is the client's key too.
        const kept = value.split(',').filter((p) => !isKeyProtocol(p));
        if (kept.length === 0) continue;
        value = kept.map((p) => p.trim()).join(', ');
      }
      headers[w++] = headers[i]!;
      headers[w++] = value;
    }
    headers.length = w;
  }
  if (route.setHeaders !== null) replaceHeaders(headers, route.setHeaders);
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'latin1').digest();
}

/** An origin-form target with its path resolved as a lenient server would (the query kept). */
function resolvedTarget(url: string): string {
  const path = pathOf(url);
  return resolvePath(path) + url.slice(path.length);
}

/**
 * The target without `key` query parameters (names decoded as the relays'
 * frameworks decode them: `+` as space, percent-escapes), for a route that
 * replaces the client's key: the client's key never reaches that upstream.
 */
export function withoutKeyParams(target: string): string {
  const q = target.indexOf('?');
  if (q === -1) return target;
  const kept = target
    .slice(q + 1)
    .split('&')
    .filter((pair) => {
      const eq = pair.indexOf('=');
      const raw = (eq === -1 ? pair : pair.slice(0, eq)).replaceAll('+', ' ');
      let name: string;
      try {
        name = decodeURIComponent(raw);
      } catch {
        return false; // undecodable: dropped rather than guessed
      }
      return name !== 'key';
    });
  return kept.length === 0 ? target.slice(0, q) : `${target.slice(0, q)}?${kept.join('&')}`;
}
