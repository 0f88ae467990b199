import type { Metric, OpenMetricsContentType, PrometheusContentType, Registry } from 'prom-client';

/**
 * Counters and histograms for the proxy's hot path that a prom-client
 * Registry serves exactly as it would serve prom-client's own Counter and
 * Histogram: same text, same `getMetricsAsJSON()` (so the cluster's
 * `AggregatorRegistry.aggregate` sums them the same way).
 *
 * What they save: a prom-client child call builds a label object, hashes
 * it, validates it and looks it up in a map on every increment or
 * observation. Here the label value is fixed when the child is made, so an
 * increment is `value++` and an observation a scan over the bucket bounds.
 * All the shaping work happens in `get()`, once per scrape.
 *
 * prom-client's Registry duck-types what it holds: it reads `name`,
 * `type`, `help`, `aggregator`, calls `get()` (or `getForPromString()` for
 * the text, when there is one) and `reset()`. The shapes below follow
 * prom-client 15.1.3 (lib/counter.js, lib/histogram.js); the spec compares
 * both byte for byte.
 */

type AnyRegistry = Registry<PrometheusContentType> | Registry<OpenMetricsContentType>;

/** The Prometheus data model's names (prom-client checks the same). */
const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function checkNames(name: string, help: string, labelName: string | undefined): void {
  if (!METRIC_NAME.test(name)) throw new Error(`Invalid metric name: ${name}`);
  if (help === '') throw new Error(`Metric ${name} needs a help text`);
  if (labelName !== undefined && !LABEL_NAME.test(labelName)) {
    throw new Error(`Invalid label name for ${name}: ${labelName}`);
  }
}

function register(metric: object, registers: readonly AnyRegistry[]): void {
  // The Registry's typings accept only prom-client's own classes; at run
  // time it needs no more than the members these classes have.
  for (const r of registers) r.registerMetric(metric as Metric);
}

/** A metric as `get()` returns it (key order as prom-client's). */
export interface LightMetricJson<V> {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  values: V[];
  aggregator: 'sum';
}

export interface LightCounterConfig {
  name: string;
  help: string;
  /** The one label every series has. */
  labelName: string;
  registers: readonly AnyRegistry[];
}

export interface CounterValue {
  value: number;
  labels: Record<string, string>;
}

/** The counter of one label value. */
export class LightCounterChild {
  /** Increments since the last reset. */
  value = 0;
  /** In the owner's output (incremented at least once since the last reset). */
  listed = false;

  constructor(
    readonly labelValue: string,
    /** The owner's output order, shared with it (cleared in place on reset). */
    private readonly order: LightCounterChild[],
  ) {}

  inc(): void {
    if (!this.listed) {
      this.listed = true;
      this.order.push(this);
    }
    this.value++;
  }
}

/**
 * A counter with one label. Like prom-client's, a label value appears in
 * the output once it has been incremented, in the order of first increments.
 */
export class LightCounter {
  readonly type = 'counter' as const;
  readonly aggregator = 'sum' as const;
  /** Not readonly: an OpenMetrics Registry strips `_total` from a counter's name in place. */
  name: string;
  readonly help: string;
  readonly labelName: string;

  private readonly children = new Map<string, LightCounterChild>();
  private readonly order: LightCounterChild[] = [];

  constructor(config: LightCounterConfig) {
    checkNames(config.name, config.help, config.labelName);
    this.name = config.name;
    this.help = config.help;
    this.labelName = config.labelName;
    register(this, config.registers);
  }

  /** The series of one label value; bind it once and keep it. */
  child(labelValue: string): LightCounterChild {
    let c = this.children.get(labelValue);
    if (c === undefined) {
      c = new LightCounterChild(labelValue, this.order);
      this.children.set(labelValue, c);
    }
    return c;
  }

  get(): Promise<LightMetricJson<CounterValue>> {
    return Promise.resolve({
      help: this.help,
      name: this.name,
      type: this.type,
      values: this.order.map((c) => ({ value: c.value, labels: { [this.labelName]: c.labelValue } })),
      aggregator: this.aggregator,
    });
  }

  /** As prom-client's: every series leaves the output until incremented again. */
  reset(): void {
    for (const c of this.order) {
      c.value = 0;
      c.listed = false;
    }
    this.order.length = 0;
  }
}

export interface LightHistogramConfig<L extends string | undefined> {
  name: string;
  help: string;
  /** At most one label; without it the histogram itself is the one series. */
  labelName?: L;
  /** Upper bounds, finite and increasing; `+Inf` is implicit. */
  buckets: readonly number[];
  registers: readonly AnyRegistry[];
}

/** A histogram sample as `get()` returns it (prom-client's shape after it merges the labels). */
export interface HistogramValue {
  value: number;
  metricName: string;
  /** `null` on bucket lines, `undefined` on `_sum` and `_count` (prom-client's values). */
  exemplar: null | undefined;
  labels: Record<string, string | number>;
}

/** A sample as `getForPromString()` returns it: `le` apart from the series' labels. */
interface HistogramPromValue {
  labels: { le?: number | '+Inf' };
  sharedLabels: Readonly<Record<string, string>>;
  value: number;
  metricName: string;
  exemplar: null | undefined;
}

/** The counts of one label value (or of an unlabelled histogram). */
export class LightHistogramSeries {
  /** Observations per bucket, not cumulative; those above the last bound are only in `count`. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  /** In the owner's output (observed since the last reset; an unlabelled series starts listed). */
  listed = false;

  constructor(
    /** The series' labels, `{}` without a label; the same object on every scrape. */
    readonly labels: Readonly<Record<string, string>>,
    private readonly bounds: readonly number[],
    /** The owner's output order, shared with it (cleared in place on reset). */
    private readonly order: LightHistogramSeries[],
  ) {
    this.counts = new Float64Array(bounds.length);
  }

  /**
   * Records one value. NaN and ±Infinity are dropped: prom-client throws on
   * them, and a measurement must never fail the request it measures.
   */
  observe(value: number): void {
    if (!Number.isFinite(value)) return;
    if (!this.listed) {
      this.listed = true;
      this.order.push(this);
    }
    const bounds = this.bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]!) {
        this.counts[i]!++;
        break;
      }
    }
    this.sum += value;
    this.count++;
  }

  clear(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
    this.listed = false;
  }
}

/**
 * A histogram with fixed buckets and no label or one. `L` is the label's
 * name type: `child()` is for a labelled histogram, `observe()` for an
 * unlabelled one, and the compiler holds each to its kind.
 *
 * As prom-client's: a labelled series appears once observed, in the order
 * of first observations; an unlabelled histogram appears from the start
 * (all zeros), but after `reset()` only once observed again.
 */
export class LightHistogram<L extends string | undefined = undefined> {
  readonly type = 'histogram' as const;
  readonly aggregator = 'sum' as const;
  readonly name: string;
  readonly help: string;
  readonly labelName: L;

  private readonly bounds: readonly number[];
  private readonly order: LightHistogramSeries[] = [];
  private readonly children = new Map<string, LightHistogramSeries>();
  /** The series of an unlabelled histogram; null with a label. */
  private readonly root: LightHistogramSeries | null;

  constructor(config: LightHistogramConfig<L>) {
    checkNames(config.name, config.help, config.labelName);
    if (config.labelName === 'le') throw new Error(`${config.name}: le is reserved for the bucket bound`);
    config.buckets.forEach((b, i) => {
      if (!Number.isFinite(b) || (i > 0 && b <= config.buckets[i - 1]!)) {
        throw new Error(`${config.name}: buckets must be finite and increasing`);
      }
    });
    this.name = config.name;
    this.help = config.help;
    this.labelName = config.labelName as L;
    this.bounds = Object.freeze([...config.buckets]);
    if (config.labelName === undefined) {
      this.root = new LightHistogramSeries(Object.freeze({}), this.bounds, this.order);
      this.root.listed = true;
      this.order.push(this.root);
    } else {
      this.root = null;
    }
    register(this, config.registers);
  }

  /** The series of one label value (labelled histograms); bind it once and keep it. */
  child(this: LightHistogram<string>, labelValue: string): LightHistogramSeries {
    if (this.root !== null) throw new Error(`${this.name} has no label`);
    let s = this.children.get(labelValue);
    if (s === undefined) {
      s = new LightHistogramSeries(Object.freeze({ [this.labelName]: labelValue }), this.bounds, this.order);
      this.children.set(labelValue, s);
    }
    return s;
  }

  /** Records one value (unlabelled histograms); non-finite values are dropped. */
  observe(this: LightHistogram, value: number): void {
    if (this.root === null) throw new Error(`${this.name} needs a label value: use child()`);
    this.root.observe(value);
  }

  /**
   * What the Registry renders the text from: each sample's `le` apart from
   * the series' labels (`sharedLabels`), as prom-client's Histogram does, so
   * the label order on a line is the same even with default labels.
   */
  getForPromString(): Promise<LightMetricJson<HistogramPromValue>> {
    const bucket = `${this.name}_bucket`;
    const sum = `${this.name}_sum`;
    const count = `${this.name}_count`;
    const values: HistogramPromValue[] = [];
    for (const s of this.order) {
      const shared = s.labels;
      let cumulative = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        cumulative += s.counts[i]!;
        values.push({
          labels: { le: this.bounds[i]! },
          sharedLabels: shared,
          value: cumulative,
          metricName: bucket,
          exemplar: null,
        });
      }
      values.push(
        { labels: { le: '+Inf' }, sharedLabels: shared, value: s.count, metricName: bucket, exemplar: null },
        { labels: {}, sharedLabels: shared, value: s.sum, metricName: sum, exemplar: undefined },
        { labels: {}, sharedLabels: shared, value: s.count, metricName: count, exemplar: undefined },
      );
    }
    return Promise.resolve({
      name: this.name,
      help: this.help,
      type: this.type,
      values,
      aggregator: this.aggregator,
    });
  }

  /** The JSON form (`getMetricsAsJSON`, cluster aggregation): each sample's labels merged, `le` first. */
  async get(): Promise<LightMetricJson<HistogramValue>> {
    const data = await this.getForPromString();
    return {
      ...data,
      values: data.values.map(({ value, metricName, exemplar, labels, sharedLabels }) => ({
        value,
        metricName,
        exemplar,
        labels: { ...labels, ...sharedLabels },
      })),
    };
  }

  reset(): void {
    for (const s of this.order) s.clear();
    this.order.length = 0;
  }
}
