import { uuidv7 } from '../infra/uuid';
import { type IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import {
  type ErrorCode,
  formatCidr,
  type InterceptReason,
  statusOf,
  type IpAddress,
  type KeyRules,
  keyRulesOf,
  looksLikeDashedVendorKey,
  maskKey,
  networkOf,
  type Settings,
} from '@keypin/shared';
import type { Logger } from 'pino';
import { judge } from '../binding/binding-rules';
import type { BindingStoreService, LoadOutcome } from '../binding/binding-store.service';
import type { BindingRule, FirstUse } from '../binding/binding.types';
import type { UsageRecorder } from '../binding/usage-recorder.service';
import type { DailyStats } from '../dashboard/daily-stats.service';
import type { Decision, MetricsService } from '../infra/metrics/metrics.service';
import type { InterceptSink } from '../intercept/intercept.types';
import type { SettingsService } from '../settings/settings.service';
import { resolveApiKey } from './api-key';
import { type ClientIpPolicy, resolveClientIp } from './client-ip';
import type { StatusListener } from './forwarder';
import { InflightLimiter } from './inflight-limiter';
import { RateLimitedLog } from '../infra/rate-limited-log';
import type { KeyHasher } from './key-hasher';
import {
  hasRequestBody,
  isWebSocketUpgrade,
  queryKeys,
  type RequestHead,
  scanRequestHead,
} from './request-head';
import { sendError, sendSocketError } from './responses';
import { lingerOnClose } from '../infra/http/unread-body';
import { NetworkGate, type NetworkRefusal, networkRefusalMessage } from '../network/network-gate';
import { applyRouteHeaders, hasProxyToken, keyRulesOn, type RouteTable } from '../route/route-table';
import { checkTarget, isReservedTarget, pathOf, REFUSED_PATH } from './request-target';
import type { CompiledPolicy } from '../policy/compiled-policy';
import type { PolicyCheck, PolicyGate } from '../policy/policy-gate';
import type { Lease } from '../policy/policy-limiter';
import type { AccessLog } from './access-log';

type Outcome =
  | {
      forward: true;
      decision: Decision;
      head: RequestHead;
      clientIp: string;
      /** The binding that allowed it (its usage is counted once it is really forwarded). */
      bindingId?: number;
      /** The key's policy and its binding, when one applies and is not checked yet. */
      policy?: { p: CompiledPolicy; bindingId: number };
      /** From the policy check: the slot among the key's requests in flight, given back when the request ends. */
      lease?: Lease | null;
      /** From the policy check: `x-ratelimit-*` for the answer. */
      answerHeaders?: string[] | null;
      /** From the policy check: the body it read, forwarded instead of the stream. */
      body?: Buffer | null;
    }
  | {
      forward: false;
      decision: Decision;
      code: ErrorCode;
      message: string;
      head: RequestHead | null;
      retryAfter?: number;
      /** More answer headers (a policy refusal's `x-ratelimit-*`). */
      headers?: string[];
      /** The request body was read to its end already (nothing left to discard). */
      bodyRead?: boolean;
    };

/** The decision recorded for a policy refusal's code. */
const POLICY_DECISIONS: Partial<Record<ErrorCode, Decision>> = {
  rate_limited: 'rate_limited',
  quota_exceeded: 'quota_exceeded',
  model_not_allowed: 'model_not_allowed',
  max_tokens_too_large: 'max_tokens_too_large',
  body_too_large: 'body_too_large',
};

export interface ProxyDeps {
  policy: ClientIpPolicy;
  hasher: KeyHasher;
  store: BindingStoreService;
  settings: SettingsService;
  usage: UsageRecorder;
  stats: DailyStats;
  intercepts: InterceptSink;
  /** Which upstream each path reaches (docs/contract.md 10); DOWNSTREAM_URL is its fallback. */
  routes: RouteTable;
  /** Key policies (docs/contract.md 9), checked after the binding allowed a request. */
  gate: PolicyGate;
  /** ACCESS_LOG=json, or null (off). */
  access: AccessLog | null;
  metrics: MetricsService;
  logger: Logger;
  /** MAX_INFLIGHT_PER_IP (0 = unlimited). */
  maxInflightPerIp: number;
}

/**
 * The hot path: key → hash → client IP → decision → stream. Everything on a
 * cache hit is synchronous; a miss awaits one (shared) store load.
 */
export class ProxyService {
  private readonly ipHeader: string;
  private warnedDashedKey = false;
  private rulesOf: Settings | null = null;
  private rules: KeyRules = { relay: 'newapi', tokenNormalize: 'newapi', keyCase: 'sensitive' };
  /** Requests being forwarded right now (for graceful shutdown). */
  private inFlight = 0;
  /** The same, per client IP (MAX_INFLIGHT_PER_IP); WebSocket tunnels included. */
  private readonly perIp: InflightLimiter;
  private readonly tooManyInFlightMessage: string;
  private readonly revokeFailureLog: RateLimitedLog;
  /** The network policy (docs/contract.md 10), compiled once per settings change. */
  private readonly networks = new NetworkGate();

  /** The target the relay is asked for (bound once: `resolveApiKey` calls it only for New API's placeholder). */
  private readonly relayTargetOf = (url: string): string => {
    const route = this.d.routes.match(url);
    return route === null ? url : this.d.routes.upstreamPath(route, url);
  };

  constructor(private readonly d: ProxyDeps) {
    this.ipHeader = d.policy.header;
    this.perIp = new InflightLimiter(d.maxInflightPerIp);
    this.tooManyInFlightMessage =
      `Too many requests from your address are in progress at once (at most ${d.maxInflightPerIp}); ` +
      'wait for some to finish.';
    this.revokeFailureLog = new RateLimitedLog(
      d.logger,
      'could not remove a first-use binding the relay refused',
    );
    d.metrics.inflightSource = () => ({ requests: this.perIp.requests, clientIps: this.perIp.clientIps });
  }

  get activeRequests(): number {
    return this.inFlight;
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    if (isReservedTarget(req.url!)) {
      const path = req.url === REFUSED_PATH ? 'this path' : `${req.method} ${pathOf(req.url!)}`;
      sendError(res, 'not_found', `No route for ${path}: it is reserved for KeyPin and never forwarded.`);
      return;
    }
    const started = performance.now();
    const out = this.decide(req);
    if (out instanceof Promise) {
      out.then(
        (o) => this.decided(o, req, res, started),
        (err: Error) => this.failed(err, res),
      );
    } else {
      this.decided(out, req, res, started);
    }
  }

  private failed(err: Error, res: ServerResponse): void {
    this.d.logger.error({ err: err.message }, 'proxy decision failed');
    sendError(res, 'internal_error', 'Internal error.', true);
  }

  /** The binding decision is made: check the key's policy when one applies, then answer. */
  private decided(o: Outcome, req: IncomingMessage, res: ServerResponse, started: number): void {
    const now = performance.now();
    this.d.metrics.decisionSeconds.observe((now - started) / 1000);
    if (!o.forward || o.policy === undefined || res.destroyed) {
      this.respond(o, req, res, started);
      return;
    }
    this.d.gate.checkThen(o.policy.p, o.policy.bindingId, req, o.head.hasBody, (r) => {
      this.d.metrics.policySeconds.observe((performance.now() - now) / 1000);
      this.respond(withPolicy(o, r), req, res, started);
    });
  }

  handleUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    // Upgrades bypass Fastify's router (and its rewriteUrl): resolve the target here.
    const target = checkTarget(req.url!);
    if (!target.ok) {
      sendSocketError(
        socket,
        'not_found',
        'No route for this path: it is reserved for KeyPin and never forwarded.',
      );
      return;
    }
    req.url = target.url;
    if (!isWebSocketUpgrade(req.rawHeaders)) {
      // Not a WebSocket (e.g. `Upgrade: h2c`): `Upgrade` is hop-by-hop, so
      // serve it as the ordinary request it is, on a response we attach to
      // the socket ourselves (Node already detached its parser).
      if (head.length > 0 || hasRequestBody(req.rawHeaders)) {
        sendSocketError(socket, 'bad_request', 'Only WebSocket upgrades are supported.');
        return;
      }
      const res = new ServerResponse(req);
      res.shouldKeepAlive = false;
      res.assignSocket(socket);
      res.once('finish', () => socket.end());
      this.handle(req, res);
      return;
    }
    if (isReservedTarget(req.url)) {
      sendSocketError(socket, 'not_found', 'WebSocket upgrades are not served on reserved paths.');
      return;
    }
    // A handshake is a bodiless GET: a body would be held until the relay's
    // 101 and never belong to the tunnel.
    if (hasRequestBody(req.rawHeaders)) {
      sendSocketError(socket, 'bad_request', 'A WebSocket upgrade request carries no body.');
      return;
    }
    const started = performance.now();
    const act = (o: Outcome) => {
      const out = this.takeSlot(o, socket.destroyed);
      this.count(out);
      if (!out.forward) {
        sendSocketError(socket, out.code, out.message, out.retryAfter, out.headers);
        if (this.d.access !== null) {
          this.logAccess(req, out.head, null, statusOf(out.code), out.decision, 0, 0, started);
        }
        return;
      }
      const lease = out.lease ?? null;
      if (socket.destroyed) {
        // The client left while we were deciding: no slot was taken.
        if (lease !== null) this.d.gate.release(lease);
        return;
      }
      const ip = out.clientIp;
      if (out.bindingId !== undefined) this.d.usage.record(out.bindingId, ip, Date.now());
      const read0 = socket.bytesRead;
      const written0 = socket.bytesWritten;
      // The tunnel lasts as long as the client's socket: one access line when it ends.
      socket.once('close', () => {
        this.perIp.release(ip);
        if (lease !== null) this.d.gate.release(lease);
        if (this.d.access !== null) {
          const bytesIn = socket.bytesRead - read0;
          const bytesOut = socket.bytesWritten - written0;
          this.logAccess(req, out.head, ip, 101, out.decision, bytesIn, bytesOut, started);
        }
      });
      const route = out.head.route!;
      route.upstream.tunnel.tunnel(
        req,
        socket,
        head,
        this.downstreamHeaders(out.head, ip),
        this.d.routes.upstreamPath(route, req.url!),
      );
    };
    const decided = (o: Outcome) => {
      const now = performance.now();
      this.d.metrics.decisionSeconds.observe((now - started) / 1000);
      if (!o.forward || o.policy === undefined || socket.destroyed) {
        act(o);
        return;
      }
      // A handshake has no body: the model comes from the query (Realtime's `?model=`).
      this.d.gate.check(o.policy.p, o.policy.bindingId, req, false).then(
        (r) => {
          this.d.metrics.policySeconds.observe((performance.now() - now) / 1000);
          act(withPolicy(o, r));
        },
        () => sendSocketError(socket, 'internal_error', 'Internal error.'),
      );
    };
    const out = this.decide(req);
    if (out instanceof Promise) {
      out.then(decided, () => sendSocketError(socket, 'internal_error', 'Internal error.'));
    } else {
      decided(out);
    }
  }

  /**
   * Takes the client IP's in-flight slot for a request about to be
   * forwarded (MAX_INFLIGHT_PER_IP); refused when none is free, and then a
   * policy slot it holds is given back. `gone`: the client left meanwhile.
   */
  private takeSlot(o: Outcome, gone: boolean): Outcome {
    if (!o.forward || gone || this.perIp.tryAcquire(o.clientIp)) return o;
    if (o.lease) this.d.gate.release(o.lease);
    return this.tooManyInFlight(o);
  }

  /** Metrics and the dashboard's counters for one decided request. */
  private count(out: Outcome): void {
    this.d.metrics.decision(out.decision);
    this.d.stats.count(out.decision);
    if (!out.forward) {
      this.d.metrics.refusal(out.code);
      this.d.stats.refused(out.code);
    }
  }

  private respond(o: Outcome, req: IncomingMessage, res: ServerResponse, started: number): void {
    // A slot per client IP is taken only for what is really forwarded (a
    // client that left while we were deciding takes none).
    const out = this.takeSlot(o, res.destroyed);
    this.count(out);
    if (!out.forward) {
      const bodyUnread = out.head !== null && out.head.hasBody && out.bodyRead !== true;
      // A refused upload may still be arriving: read and discard it after the
      // answer, so the client sees its 403 rather than a connection reset.
      if (bodyUnread) lingerOnClose(req);
      const sent = sendError(
        res,
        out.code,
        out.message,
        out.head === null || bodyUnread,
        out.retryAfter,
        out.headers,
      );
      if (this.d.access !== null) {
        this.logAccess(req, out.head, null, statusOf(out.code), out.decision, 0, sent, started);
      }
      return;
    }
    const lease = out.lease ?? null;
    if (res.destroyed) {
      // The client left while we were deciding.
      if (lease !== null) this.d.gate.release(lease);
      return;
    }
    const ip = out.clientIp;
    if (out.bindingId !== undefined) this.d.usage.record(out.bindingId, ip, Date.now());
    this.inFlight++;
    const route = out.head.route!;
    // On a provider-key route the upstream never sees the client's key: its
    // 401/403 is about the server's provider key, not a verdict on this one.
    const onStatus =
      out.decision === 'first_bind' && out.bindingId !== undefined && !route.replacesKey
        ? this.undoFirstBindIfRefused(out.bindingId)
        : undefined;
    const body = out.body ?? (out.head.hasBody ? req : null);
    const readBefore = this.d.access === null ? 0 : req.socket.bytesRead;
    const sent = route.upstream.forwarder.forward(
      req,
      res,
      this.d.routes.upstreamPath(route, req.url!),
      this.downstreamHeaders(out.head, ip),
      body,
      onStatus,
      out.answerHeaders,
    );
    // 'close' ends every response: finished, failed, or cut by either side.
    if (lease === null && this.d.access === null) {
      res.once('close', () => {
        this.inFlight--;
        this.perIp.release(ip);
      });
      return;
    }
    res.once('close', () => {
      this.inFlight--;
      this.perIp.release(ip);
      if (lease !== null) this.d.gate.release(lease);
      if (this.d.access !== null) {
        const bytesIn = bodyBytes(req, out.body ?? null, readBefore);
        this.logAccess(req, out.head, ip, res.statusCode, out.decision, bytesIn, sent.bytesOut, started);
      }
    });
  }

  /** One ACCESS_LOG line (only called when it is on). */
  private logAccess(
    req: IncomingMessage,
    head: RequestHead | null,
    clientIp: string | null,
    status: number,
    decision: Decision,
    bytesIn: number,
    bytesOut: number,
    started: number,
  ): void {
    this.d.access!.write({
      clientIp: clientIp ?? head?.clientIp ?? null,
      key: head?.keyDisplay ?? null,
      route: head?.route?.id == null ? null : head.route.prefix,
      method: req.method ?? '',
      target: req.url ?? '/',
      status,
      decision,
      bytesIn,
      bytesOut,
      durationMs: performance.now() - started,
    });
  }

  /** MAX_INFLIGHT_PER_IP reached: the request that would have been forwarded is refused instead. */
  private tooManyInFlight(o: Outcome): Outcome {
    return {
      forward: false,
      decision: 'too_many_concurrent_requests',
      code: 'too_many_concurrent_requests',
      message: this.tooManyInFlightMessage,
      head: o.head,
      retryAfter: 1,
    };
  }

  /** FIRST_USE_LIMIT reached for the client's network: nothing was bound. */
  private tooManyNewKeys(retryAfter: number, head: RequestHead): Outcome {
    return {
      forward: false,
      decision: 'too_many_new_keys',
      code: 'too_many_new_keys',
      message: `Too many new API keys were used from your network in the last minute; try again in ${retryAfter} s.`,
      head,
      retryAfter,
    };
  }

  /**
   * docs/contract.md 2.3 item 6: when the relay answers a first use with 401 or 403,
   * the binding that use made is removed again (the answer itself passes
   * unchanged), so keys the relay does not know leave nothing behind.
   */
  private undoFirstBindIfRefused(bindingId: number): StatusListener {
    const boundAt = Date.now();
    return (status) => {
      if (status !== 401 && status !== 403) return;
      this.d.store.revokeFirstUse(bindingId).then(
        (removed) => {
          if (!removed) return; // changed since (an admin edit, a ban): kept
          this.d.stats.firstBindRevoked(boundAt);
          this.d.metrics.firstBindRevoked();
        },
        (err: Error) => this.revokeFailureLog.warn({ err: err.message, bindingId }),
      );
    };
  }

  private downstreamHeaders(head: RequestHead, clientIp: string): string[] {
    const h = head.forward;
    const route = head.route!;
    if (route.token !== null || route.replacesKey || route.setHeaders !== null) applyRouteHeaders(route, h);
    h.push('x-real-ip', clientIp, 'x-forwarded-for', clientIp);
    if (head.host !== undefined) h.push('x-forwarded-host', head.host);
    return h;
  }

  /** The key rules of the current settings, rebuilt only when the settings object changes. */
  private keyRules(settings: Settings): KeyRules {
    if (this.rulesOf !== settings) {
      this.rulesOf = settings;
      this.rules = keyRulesOf(settings);
    }
    return this.rules;
  }

  private decide(req: IncomingMessage): Outcome | Promise<Outcome> {
    const head = scanRequestHead(req.rawHeaders, this.ipHeader);
    const ipr = resolveClientIp(req.socket.remoteAddress, head.ipHeaderLines, this.d.policy);
    if (!ipr.ok) {
      return { forward: false, decision: 'bad_request', code: 'bad_client_ip', message: ipr.message, head };
    }
    if (this.d.access !== null) head.clientIp = ipr.text;
    const settings = this.d.settings.current;
    const route = this.d.routes.match(req.url!);
    const candidates = head.keys;
    for (const k of queryKeys(req.url!)) candidates.push({ place: 'query', value: k });
    const rules = route === null ? this.keyRules(settings) : keyRulesOn(route, settings);
    const key = resolveApiKey(candidates, head.duplicateKeyHeader, rules, req.url!, this.relayTargetOf);

    // docs/contract.md 10: the network policy comes before everything else.
    const net = this.networks;
    net.use(settings.networks);
    if (!net.open) {
      const refusal = net.refusal(ipr.ip);
      if (refusal !== null) {
        if (key.kind !== 'key') return this.networkRefused(refusal, null, head, ipr.text);
        return this.keyRefusedByNetwork(refusal, key.canonical, req, head, ipr.ip, ipr.text, settings);
      }
    }
    if (route === null) {
      return {
        forward: false,
        decision: 'no_route',
        code: 'no_route',
        message: `No route for ${pathOf(req.url!)}.`,
        head,
      };
    }
    if (route.broken !== null) {
      return {
        forward: false,
        decision: 'route_unavailable',
        code: 'bad_gateway',
        message: 'This route is not configured correctly on this gateway; its administrators have been told.',
        head,
      };
    }
    if (route.token !== null && !hasProxyToken(route, req.rawHeaders)) {
      return {
        forward: false,
        decision: 'proxy_token_required',
        code: 'proxy_token_required',
        message: `This route needs the proxy token in the ${route.token.name} header.`,
        head,
      };
    }
    head.route = route;

    switch (key.kind) {
      case 'none':
        return { forward: true, decision: 'unauthenticated', head, clientIp: ipr.text };
      case 'ambiguous':
        return { forward: false, decision: 'bad_request', code: 'ambiguous_key', message: key.message, head };
      case 'invalid':
        return { forward: false, decision: 'bad_request', code: 'invalid_key', message: key.message, head };
    }
    if (
      !this.warnedDashedKey &&
      rules.relay === 'newapi' &&
      rules.tokenNormalize === 'newapi' &&
      looksLikeDashedVendorKey(key.raw)
    ) {
      this.warnedDashedKey = true;
      this.d.logger.warn(
        'a key with dashes inside (like sk-proj-… or sk-ant-…) was seen under TOKEN_NORMALIZE=newapi; ' +
          'such keys are cut at the first dash: use TOKEN_NORMALIZE=none if the downstream issues them',
      );
    }
    if (this.d.access !== null) head.keyDisplay = maskKey(key.canonical);
    const hashHex = this.d.hasher.hashHex(key.canonical);
    const cached = this.d.store.peek(hashHex);
    if (cached !== undefined) return this.judged(cached, false, req, head, ipr.ip, ipr.text);

    const mayBind = net.mayBindFrom(ipr.ip);
    return this.d.store
      .load(hashHex, this.firstUse(key.canonical, ipr.ip, ipr.text, settings), mayBind)
      .then((o: LoadOutcome): Outcome => {
        if (o.kind === 'found') return this.judged(o.rule, o.created, req, head, ipr.ip, ipr.text);
        if (o.kind === 'limited') return this.tooManyNewKeys(o.retryAfterSeconds, head);
        if (o.kind === 'unbound') {
          // first_use_from: a key nobody has used yet, tried from outside the approved networks.
          const ref = { display: maskKey(key.canonical), hashHex };
          this.recordIntercept(req, head, 'first_use_not_allowed', null, ref, ipr.text);
          return this.networkRefused('first_use_not_allowed', 'intercepted', head, ipr.text);
        }
        if (this.d.settings.current.failsafe_mode === 'open') {
          return { forward: true, decision: 'failsafe_open', head, clientIp: ipr.text };
        }
        return {
          forward: false,
          decision: 'failsafe_closed',
          code: 'binding_store_unavailable',
          message: 'KeyPin cannot check this key right now; try again shortly.',
          head,
        };
      });
  }

  private firstUse(canonical: string, ip: IpAddress, ipText: string, settings: Settings): FirstUse {
    const prefix = ip.version === 4 ? settings.bind_ipv4_prefix : settings.bind_ipv6_prefix;
    return {
      tokenDisplay: maskKey(canonical),
      network: formatCidr(networkOf(ip, prefix)),
      ip: ipText,
      at: new Date(),
    };
  }

  /** A network policy refusal's outcome; `decision` null: a request without a key. */
  private networkRefused(
    code: NetworkRefusal,
    decision: 'intercepted' | null,
    head: RequestHead,
    ipText: string,
  ): Outcome {
    return {
      forward: false,
      decision: decision ?? 'network_refused',
      code,
      message: networkRefusalMessage(code, ipText),
      head,
    };
  }

  /**
   * A request with a key from a network the policy refuses: recorded as an
   * intercept of the key's binding when it has one (looked up, never
   * created), else with none.
   */
  private keyRefusedByNetwork(
    code: NetworkRefusal,
    canonical: string,
    req: IncomingMessage,
    head: RequestHead,
    ip: IpAddress,
    ipText: string,
    settings: Settings,
  ): Outcome | Promise<Outcome> {
    const hashHex = this.d.hasher.hashHex(canonical);
    const ref = { display: maskKey(canonical), hashHex };
    if (this.d.access !== null) head.keyDisplay = ref.display;
    const cached = this.d.store.peek(hashHex);
    if (cached !== undefined) {
      this.recordIntercept(req, head, code, cached, ref, ipText);
      return this.networkRefused(code, 'intercepted', head, ipText);
    }
    return this.d.store.load(hashHex, this.firstUse(canonical, ip, ipText, settings), false).then((o) => {
      this.recordIntercept(req, head, code, o.kind === 'found' ? o.rule : null, ref, ipText);
      return this.networkRefused(code, 'intercepted', head, ipText);
    });
  }

  /** One intercept record (docs/contract.md 3); `rule` null: the key has no binding. */
  private recordIntercept(
    req: IncomingMessage,
    head: RequestHead,
    reason: InterceptReason,
    rule: BindingRule | null,
    key: { display: string; hashHex: string } | null,
    ipText: string,
    enforced = true,
  ): void {
    this.d.intercepts.record({
      id: uuidv7(),
      bindingId: rule?.id ?? null,
      tokenDisplay: rule?.tokenDisplay ?? key!.display,
      ...(rule === null ? { keyRef: key!.hashHex.slice(0, 16) } : {}),
      attemptIp: ipText,
      allowedIps: rule?.allowedIps ?? NO_NETWORKS,
      reason,
      method: req.method ?? 'GET',
      path: pathOf(req.url ?? '/'),
      userAgent: head.userAgent,
      enforced,
      at: new Date(),
    });
  }

  private judged(
    rule: BindingRule,
    created: boolean,
    req: IncomingMessage,
    head: RequestHead,
    ip: IpAddress,
    ipText: string,
  ): Outcome {
    const verdict = created ? 'allow' : judge(rule, ip);
    const p = this.d.gate.policyFor(rule);
    if (verdict === 'allow') {
      const out: Outcome = {
        forward: true,
        decision: created ? 'first_bind' : 'allowed',
        head,
        clientIp: ipText,
        bindingId: rule.id,
      };
      if (p !== null) out.policy = { p, bindingId: rule.id };
      return out;
    }
    const enforce = this.d.settings.current.enforce_mode === 'enforce';
    this.recordIntercept(req, head, verdict, rule, null, ipText, enforce);
    const decision: Decision = verdict === 'key_banned' ? 'banned' : 'intercepted';
    if (!enforce) {
      // Monitor mode forwards it; the key's policy still applies.
      const out: Outcome = { forward: true, decision, head, clientIp: ipText };
      if (p !== null) out.policy = { p, bindingId: rule.id };
      return out;
    }
    return verdict === 'key_banned'
      ? { forward: false, decision, code: 'key_banned', message: 'This API key has been banned.', head }
      : {
          forward: false,
          decision,
          code: 'ip_not_allowed',
          message: `This API key is bound to another network; requests from ${ipText} are not allowed.`,
          head,
        };
  }
}

const NO_NETWORKS: readonly string[] = Object.freeze([]);

/**
 * A forwarded request's body bytes: what the policy read, else the
 * declared Content-Length, else (a chunked body streamed through) what the
 * connection read while it was forwarded, chunk framing included.
 */
function bodyBytes(req: IncomingMessage, read: Buffer | null, readBefore: number): number {
  if (read !== null) return read.length;
  const declared = req.headers['content-length'];
  if (declared !== undefined) return Number(declared) || 0;
  if (req.headers['transfer-encoding'] === undefined) return 0;
  return Math.max(0, req.socket.bytesRead - readBefore);
}

/** The outcome once the policy check is done: forwarded with what the check produced, or refused. */
function withPolicy(o: Outcome & { forward: true }, r: PolicyCheck): Outcome {
  if (r.ok) {
    // The outcome is this request's own: completed in place, not copied.
    o.policy = undefined;
    o.lease = r.lease;
    o.answerHeaders = r.headers;
    o.body = r.body ?? null;
    return o;
  }
  return {
    forward: false,
    decision: POLICY_DECISIONS[r.code] ?? 'bad_request',
    code: r.code,
    message: r.message,
    head: o.head,
    retryAfter: r.retryAfter,
    headers: r.headers,
    bodyRead: r.bodyRead,
  };
}
