import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { LightCounter, LightHistogram } from './light-metrics';

export type Decision =
  | 'allowed'
  | 'first_bind'
  | 'intercepted'
  | 'banned'
  | 'unauthenticated'
  | 'failsafe_open'
  | 'failsafe_closed'
  | 'bad_request'
  /** Refused: FIRST_USE_LIMIT reached for the client's network (nothing bound). */
  | 'too_many_new_keys'
  /** Refused: MAX_INFLIGHT_PER_IP reached for the client's IP. */
  | 'too_many_concurrent_requests'
  /** Refused by the key's policy (docs/contract.md 9): one decision per refusal code. */
  | 'rate_limited'
  | 'quota_exceeded'
  | 'model_not_allowed'
  /** Refused by the network policy, for a request without a key (with one it is `intercepted`). */
  | 'network_refused'
  /** Refused: the route's proxy token is missing or wrong. */
  | 'proxy_token_required'
  /** Refused: no route matches and DOWNSTREAM_URL is not set. */
  | 'no_route'
  /** Refused: the route cannot serve on this instance (a missing environment variable). */
  | 'route_unavailable'
  | 'max_tokens_too_large'
  | 'body_too_large';

export const DECISIONS: readonly Decision[] = [
  'allowed',
  'first_bind',
  'intercepted',
  'banned',
  'unauthenticated',
  'failsafe_open',
  'failsafe_closed',
  'bad_request',
  'too_many_new_keys',
  'too_many_concurrent_requests',
  'rate_limited',
  'quota_exceeded',
  'model_not_allowed',
  'max_tokens_too_large',
  'body_too_large',
  'network_refused',
  'proxy_token_required',
  'no_route',
  'route_unavailable',
];

type CacheLayer = 'memory' | 'redis' | 'postgres';

/**
 * Prometheus metrics. Labelled children are bound once, so the hot path does
 * an increment on a plain object, not a label lookup. What every proxied
 * request touches (decisions, cache lookups, decision and downstream
 * latencies) uses the light classes of light-metrics.ts, which the Registry
 * renders exactly as prom-client's own but which skip its per-call label
 * hashing and validation.
 */
export class MetricsService {
  readonly registry = new Registry();

  private readonly requests = new LightCounter({
    name: 'keypin_requests_total',
    help: 'Proxied requests by decision',
    labelName: 'decision',
    registers: [this.registry],
  });
  private readonly decisionChildren = new Map<Decision, { inc(): void }>();

  private readonly decisionHistogram = new LightHistogram({
    name: 'keypin_decision_duration_seconds',
    help:
      'Decision latency by stage: binding = request arrival to the binding decision; ' +
      'policy = the key policy check alone (keys with a policy only)',
    labelName: 'stage',
    buckets: [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1],
    registers: [this.registry],
  });
  /** Arrival to the binding decision. */
  readonly decisionSeconds = this.decisionHistogram.child('binding');
  /** The policy check alone (model, token cap, counters). */
  readonly policySeconds = this.decisionHistogram.child('policy');

  private readonly refusals = new Counter({
    name: 'keypin_refusals_total',
    help: 'Proxied requests KeyPin refused, by error code',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });
  private readonly refusalChildren = new Map<string, { inc(): void }>();

  readonly downstreamSeconds = new LightHistogram({
    name: 'keypin_downstream_response_seconds',
    help: 'Time from forwarding to the downstream response headers',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });

  private readonly downstreamErrors = new Counter({
    name: 'keypin_downstream_errors_total',
    help: 'Downstream failures by kind',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  private readonly cacheLookups = new LightCounter({
    name: 'keypin_binding_cache_lookups_total',
    help: 'Binding lookups by the layer that answered (memory hit, redis, postgres) or miss',
    labelName: 'layer',
    registers: [this.registry],
  });
  private readonly cacheChildren = new Map<CacheLayer | 'none', { inc(): void }>();

  readonly cacheHitRatio = new Gauge({
    name: 'keypin_binding_cache_hit_ratio',
    help: 'Share of binding lookups answered from the in-process cache',
    registers: [this.registry],
    // Several processes (WORKERS): the mean of theirs, not the sum.
    aggregator: 'average',
    collect: () => {
      this.cacheHitRatio.set(this.lookups === 0 ? 0 : this.memoryHits / this.lookups);
    },
  });

  readonly queueDepth = new Gauge({
    name: 'keypin_queue_depth',
    help: 'Items waiting to be written, by buffer',
    labelNames: ['queue'] as const,
    registers: [this.registry],
  });

  readonly cachedBindings = new Gauge({
    name: 'keypin_cached_bindings',
    help: 'Bindings held in the in-process cache',
    registers: [this.registry],
  });

  private readonly firstBindsRevoked = new Counter({
    name: 'keypin_first_binds_revoked_total',
    help: 'First-use bindings removed again because the relay answered 401 or 403',
    registers: [this.registry],
  });

  private readonly inflightRequests = new Gauge({
    name: 'keypin_inflight_requests',
    help: 'Proxied requests and WebSocket tunnels in flight on this instance (counted per client IP for MAX_INFLIGHT_PER_IP)',
    registers: [this.registry],
    collect: () => {
      this.inflightRequests.set(this.inflightSource().requests);
    },
  });
  private readonly inflightClientIps = new Gauge({
    name: 'keypin_inflight_client_ips',
    help: 'Client IPs with at least one request in flight on this instance',
    registers: [this.registry],
    collect: () => {
      this.inflightClientIps.set(this.inflightSource().clientIps);
    },
  });
  /** Set by the proxy; read when /metrics is scraped, never per request. */
  inflightSource: () => { requests: number; clientIps: number } = () => ({ requests: 0, clientIps: 0 });

  private memoryHits = 0;
  private lookups = 0;

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'keypin_process_' });
    for (const d of DECISIONS) this.decisionChildren.set(d, this.requests.child(d));
    for (const l of ['memory', 'redis', 'postgres', 'none'] as const) {
      this.cacheChildren.set(l, this.cacheLookups.child(l));
    }
  }

  decision(d: Decision): void {
    this.decisionChildren.get(d)!.inc();
  }

  /** A request answered with a KeyPin error instead of being forwarded. */
  refusal(code: string): void {
    let c = this.refusalChildren.get(code);
    if (c === undefined) {
      c = this.refusals.labels(code);
      this.refusalChildren.set(code, c);
    }
    c.inc();
  }

  cacheLookup(layer: CacheLayer | 'none'): void {
    this.lookups++;
    if (layer === 'memory') this.memoryHits++;
    this.cacheChildren.get(layer)!.inc();
  }

  /** `body_timeout`: the client's request body stalled for BODY_TIMEOUT_SECONDS. */
  downstreamError(kind: 'unreachable' | 'timeout' | 'aborted' | 'reset' | 'body_timeout'): void {
    this.downstreamErrors.labels(kind).inc();
  }

  firstBindRevoked(): void {
    this.firstBindsRevoked.inc();
  }

  /**
   * Set in a process of a cluster (WORKERS ≥ 2): /metrics then answers for
   * every process of the instance, summed by the supervisor, whichever
   * worker the scrape reaches (docs/workers.md).
   */
  private clusterRender: (() => Promise<string>) | null = null;

  renderThrough(render: () => Promise<string>): void {
    this.clusterRender = render;
  }

  /** This process's metrics only. */
  async renderLocal(): Promise<string> {
    return this.registry.metrics();
  }

  async render(): Promise<string> {
    return this.clusterRender === null ? this.renderLocal() : this.clusterRender();
  }
}
