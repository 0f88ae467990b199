import { uuidv7 } from '../infra/uuid';
import { type IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import {
  type ErrorCode,
  formatCidr,
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
import type { BindingStore, LoadOutcome } from '../binding/binding-store.service';
import type { BindingRule } from '../binding/binding.types';
import type { UsageRecorder } from '../binding/usage-recorder.service';
import type { DailyStats } from '../binding/daily-stats.service';
import type { Decision, MetricsService } from '../infra/metrics/metrics.service';
import type { InterceptSink } from '../intercept/intercept.types';
import type { SettingsService } from '../settings/settings.service';
import { resolveApiKey } from './api-key';
import { type ClientIpPolicy, resolveClientIp } from './client-ip';
import type { Forwarder } from './forwarder';
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
import type { WebSocketTunnel } from './websocket-tunnel';
import { checkTarget, isReservedTarget, pathOf, REFUSED_PATH } from './request-target';

type Outcome =
  | { forward: true; decision: Decision; head: RequestHead; clientIp: string }
  | { forward: false; decision: Decision; code: ErrorCode; message: string; head: RequestHead | null };

export interface ProxyDeps {
  policy: ClientIpPolicy;
  hasher: KeyHasher;
  store: BindingStore;
  settings: SettingsService;
  usage: UsageRecorder;
  stats: DailyStats;
  intercepts: InterceptSink;
  forwarder: Forwarder;
  tunnel: WebSocketTunnel;
  metrics: MetricsService;
  logger: Logger;
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

  constructor(private readonly d: ProxyDeps) {
    this.ipHeader = d.policy.header;
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
        (o) => this.respond(o, req, res, started),
        (err: Error) => {
          this.d.logger.error({ err: err.message }, 'proxy decision failed');
          sendError(res, 'internal_error', 'Internal error.', true);
        },
      );
    } else {
      this.respond(out, req, res, started);
    }
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
    const started = performance.now();
    const act = (o: Outcome) => {
      this.d.metrics.decisionSeconds.observe((performance.now() - started) / 1000);
      this.d.metrics.decision(o.decision);
      this.d.stats.count(o.decision);
      if (!o.forward) {
        sendSocketError(socket, o.code, o.message);
        return;
      }
      this.d.tunnel.tunnel(req, socket, head, this.downstreamHeaders(o.head, o.clientIp));
    };
    const out = this.decide(req);
    if (out instanceof Promise) {
      out.then(act, () => sendSocketError(socket, 'internal_error', 'Internal error.'));
    } else {
      act(out);
    }
  }

  private respond(o: Outcome, req: IncomingMessage, res: ServerResponse, started: number): void {
    this.d.metrics.decisionSeconds.observe((performance.now() - started) / 1000);
    this.d.metrics.decision(o.decision);
    this.d.stats.count(o.decision);
    if (!o.forward) {
      const bodyUnread = o.head !== null && o.head.hasBody;
      // A refused upload may still be arriving: read and discard it after the
      // answer, so the client sees its 403 rather than a connection reset.
      if (bodyUnread) lingerOnClose(req);
      sendError(res, o.code, o.message, o.head === null || bodyUnread);
      return;
    }
    if (res.destroyed) return; // the client left while we were deciding
    this.inFlight++;
    res.once('close', () => this.inFlight--);
    this.d.forwarder.forward(req, res, this.downstreamHeaders(o.head, o.clientIp), o.head.hasBody);
  }

  private downstreamHeaders(head: RequestHead, clientIp: string): string[] {
    const h = head.forward;
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
    const settings = this.d.settings.current;
    const candidates = head.keys;
    for (const k of queryKeys(req.url!)) candidates.push({ place: 'query', value: k });
    const key = resolveApiKey(candidates, head.duplicateKeyHeader, this.keyRules(settings));
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
      settings.relay === 'newapi' &&
      settings.token_normalize === 'newapi' &&
      looksLikeDashedVendorKey(key.raw)
    ) {
      this.warnedDashedKey = true;
      this.d.logger.warn(
        'a key with dashes inside (like sk-proj-… or sk-ant-…) was seen under TOKEN_NORMALIZE=newapi; ' +
          'such keys are cut at the first dash: use TOKEN_NORMALIZE=none if the downstream issues them',
      );
    }
    const hashHex = this.d.hasher.hashHex(key.canonical);
    const cached = this.d.store.peek(hashHex);
    if (cached !== undefined) return this.judged(cached, false, req, head, ipr.ip, ipr.text);

    const prefix = ipr.ip.version === 4 ? settings.bind_ipv4_prefix : settings.bind_ipv6_prefix;
    return this.d.store
      .load(hashHex, {
        tokenDisplay: maskKey(key.canonical),
        network: formatCidr(networkOf(ipr.ip, prefix)),
        ip: ipr.text,
        at: new Date(),
      })
      .then((o: LoadOutcome): Outcome => {
        if (o.kind === 'found') return this.judged(o.rule, o.created, req, head, ipr.ip, ipr.text);
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

  private judged(
    rule: BindingRule,
    created: boolean,
    req: IncomingMessage,
    head: RequestHead,
    ip: IpAddress,
    ipText: string,
  ): Outcome {
    const verdict = created ? 'allow' : judge(rule, ip);
    if (verdict === 'allow') {
      this.d.usage.record(rule.id, ipText, Date.now());
      return { forward: true, decision: created ? 'first_bind' : 'allowed', head, clientIp: ipText };
    }
    const enforce = this.d.settings.current.enforce_mode === 'enforce';
    this.d.intercepts.record({
      id: uuidv7(),
      bindingId: rule.id,
      tokenDisplay: rule.tokenDisplay,
      attemptIp: ipText,
      allowedIps: rule.allowedIps,
      reason: verdict,
      method: req.method ?? 'GET',
      path: (req.url ?? '/').split('?')[0]!,
      userAgent: head.userAgent,
      enforced: enforce,
      at: new Date(),
    });
    const decision: Decision = verdict === 'key_banned' ? 'banned' : 'intercepted';
    if (!enforce) return { forward: true, decision, head, clientIp: ipText };
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
