import fc from 'fast-check';
import { AggregatorRegistry, Counter, Histogram, Registry, type RegistryContentType } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { LightCounter, LightHistogram } from './light-metrics';

const BUCKETS = [0.00001, 0.001, 0.01, 0.25, 1, 10];
/** Label values, one needing escaping in the text format. */
const STAGES = ['binding', 'policy', 'odd "stage"\\ with\nnewline'] as const;
const DECISIONS = ['allowed', 'banned', 'first_bind', 'intercepted'] as const;
/** Zero, every bound exactly, values between and beyond them, a negative one. */
const VALUES = [0, ...BUCKETS, 0.0000005, 0.005, 0.3, 9.999, 10.000001, 61, 1e6, -0.5];

type AnyRegistry = Registry<RegistryContentType>;

type Op =
  | { kind: 'inc'; decision: string }
  | { kind: 'observe'; stage: string; value: number }
  | { kind: 'observeUnlabelled'; value: number };

/**
 * The same three metrics twice, the light classes in one registry and
 * prom-client's in another, fed alike (children bound once, as
 * MetricsService does).
 */
function twins(contentType: RegistryContentType = Registry.PROMETHEUS_CONTENT_TYPE) {
  const [light, prom] = [new Registry<RegistryContentType>(), new Registry<RegistryContentType>()];
  for (const r of [light, prom]) r.setContentType(contentType);
  const counter = { name: 't_requests_total', help: 'Requests by "decision"\\ (a\nhelp)' };
  const labelled = { name: 't_stage_seconds', help: 'Per stage', buckets: BUCKETS };
  const unlabelled = { name: 't_downstream_seconds', help: 'Downstream', buckets: BUCKETS };

  const lc = new LightCounter({ ...counter, labelName: 'decision', registers: [light] });
  const pc = new Counter({ ...counter, labelNames: ['decision'], registers: [prom] });
  const lh = new LightHistogram({ ...labelled, labelName: 'stage', registers: [light] });
  const ph = new Histogram({ ...labelled, labelNames: ['stage'], registers: [prom] });
  const lu = new LightHistogram({ ...unlabelled, registers: [light] });
  const pu = new Histogram({ ...unlabelled, registers: [prom] });

  const counters = new Map(DECISIONS.map((d) => [d as string, [lc.child(d), pc.labels(d)] as const]));
  const stages = new Map(STAGES.map((s) => [s as string, [lh.child(s), ph.labels(s)] as const]));

  return {
    light,
    prom,
    lightMetrics: { lc, lh, lu },
    apply(ops: readonly Op[]) {
      for (const op of ops) {
        if (op.kind === 'inc') for (const c of counters.get(op.decision)!) c.inc();
        else if (op.kind === 'observe') for (const h of stages.get(op.stage)!) h.observe(op.value);
        else {
          lu.observe(op.value);
          pu.observe(op.value);
        }
      }
    },
  };
}

/** Byte-identical text, and JSON equal down to `undefined` members and key order. */
async function expectSame(light: AnyRegistry, prom: AnyRegistry): Promise<void> {
  expect(await light.metrics()).toBe(await prom.metrics());
  const [lightJson, promJson] = [await light.getMetricsAsJSON(), await prom.getMetricsAsJSON()];
  expect(lightJson).toStrictEqual(promJson);
  expect(JSON.stringify(lightJson)).toBe(JSON.stringify(promJson));
}

/** A fixed sequence touching every label value, in an order unlike their declaration. */
const SEQUENCE: Op[] = [
  { kind: 'inc', decision: 'banned' },
  { kind: 'observe', stage: 'policy', value: 0.001 },
  { kind: 'inc', decision: 'allowed' },
  { kind: 'inc', decision: 'banned' },
  ...VALUES.map((value): Op => ({ kind: 'observe', stage: 'binding', value })),
  ...VALUES.map((value): Op => ({ kind: 'observeUnlabelled', value })),
  { kind: 'observe', stage: STAGES[2], value: 10 },
  { kind: 'inc', decision: 'intercepted' },
  { kind: 'observe', stage: 'policy', value: 0 },
];

const anyOp: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('inc' as const), decision: fc.constantFrom(...DECISIONS) }),
  fc.record({
    kind: fc.constant('observe' as const),
    stage: fc.constantFrom(...STAGES),
    value: fc.oneof(fc.constantFrom(...VALUES), fc.double({ min: -1, max: 100, noNaN: true })),
  }),
  fc.record({
    kind: fc.constant('observeUnlabelled' as const),
    value: fc.oneof(fc.constantFrom(...VALUES), fc.double({ min: -1, max: 100, noNaN: true })),
  }),
);

describe('LightCounter and LightHistogram render as prom-client Counter and Histogram', () => {
  it('before anything is counted: only the unlabelled histogram shows, all zeros', async () => {
    const t = twins();
    await expectSame(t.light, t.prom);
    const text = await t.light.metrics();
    expect(text).toContain('t_downstream_seconds_bucket{le="+Inf"} 0');
    expect(text).not.toContain('t_requests_total{');
    expect(text).not.toContain('t_stage_seconds_bucket');
  });

  it('after a sequence with values on the bounds, beyond the last, zero and several labels', async () => {
    const t = twins();
    t.apply(SEQUENCE);
    await expectSame(t.light, t.prom);
    const text = await t.light.metrics();
    // Spot checks of what the sequence must give (the comparison above proves the rest).
    expect(text).toContain('t_requests_total{decision="banned"} 2');
    expect(text).not.toContain('decision="first_bind"');
    expect(text).toContain(
      `t_stage_seconds_bucket{le="1",stage="binding"} ${VALUES.filter((v) => v <= 1).length}`,
    );
    expect(text).toContain(`t_stage_seconds_count{stage="binding"} ${VALUES.length}`);
  });

  it('after any sequence of increments and observations', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(anyOp, { maxLength: 60 }), async (ops) => {
        const t = twins();
        t.apply(ops);
        await expectSame(t.light, t.prom);
      }),
      { numRuns: 150 },
    );
  });

  it('in an OpenMetrics registry and with default labels', async () => {
    for (const contentType of [Registry.PROMETHEUS_CONTENT_TYPE, Registry.OPENMETRICS_CONTENT_TYPE]) {
      const t = twins(contentType);
      for (const r of [t.light, t.prom]) r.setDefaultLabels({ instance: 'gw-1' });
      t.apply(SEQUENCE);
      await expectSame(t.light, t.prom);
      // A second scrape too: OpenMetrics renames counters in place on the first.
      await expectSame(t.light, t.prom);
    }
  });

  it('after Registry.resetMetrics: everything leaves until counted again, in the new order', async () => {
    const t = twins();
    t.apply(SEQUENCE);
    for (const r of [t.light, t.prom]) r.resetMetrics();
    await expectSame(t.light, t.prom);
    // Like prom-client's, the unlabelled histogram too is gone until observed again.
    expect(await t.light.metrics()).not.toContain('t_downstream_seconds_bucket');

    t.apply([
      { kind: 'observe', stage: STAGES[2], value: 0.3 },
      { kind: 'inc', decision: 'allowed' },
      { kind: 'observe', stage: 'binding', value: 1 },
      { kind: 'inc', decision: 'first_bind' },
      { kind: 'observeUnlabelled', value: 0.01 },
    ]);
    await expectSame(t.light, t.prom);
  });

  it('reset() on the metrics themselves clears them the same way', async () => {
    const t = twins();
    t.apply(SEQUENCE);
    for (const m of [...Object.values(t.lightMetrics), ...t.prom.getMetricsAsArray()]) {
      (m as unknown as { reset(): void }).reset();
    }
    await expectSame(t.light, t.prom);
    t.apply(SEQUENCE.slice(4));
    await expectSame(t.light, t.prom);
  });

  it('AggregatorRegistry.aggregate sums two processes the same way (also after the IPC JSON round trip)', async () => {
    const [a, b] = [twins(), twins()];
    a.apply(SEQUENCE);
    b.apply([...SEQUENCE.slice(6), { kind: 'inc', decision: 'first_bind' }, ...SEQUENCE.slice(0, 3)]);
    const json = async (r: AnyRegistry) => r.getMetricsAsJSON();
    const viaIpc = async (r: AnyRegistry) =>
      JSON.parse(JSON.stringify(await json(r))) as Awaited<ReturnType<typeof json>>;

    const light = AggregatorRegistry.aggregate([await json(a.light), await json(b.light)]);
    const prom = AggregatorRegistry.aggregate([await json(a.prom), await json(b.prom)]);
    await expectSame(light, prom);
    const lightIpc = AggregatorRegistry.aggregate([await viaIpc(a.light), await viaIpc(b.light)]);
    expect(await lightIpc.metrics()).toBe(await prom.metrics());
    expect(await prom.metrics()).toContain('t_requests_total{decision="banned"} 3');
  });
});

describe('LightHistogram', () => {
  it('drops NaN and ±Infinity without throwing (prom-client throws)', async () => {
    const t = twins();
    t.apply(SEQUENCE);
    const before = await t.light.metrics();
    const { lh, lu } = t.lightMetrics;
    for (const v of [NaN, Infinity, -Infinity]) {
      expect(() => lh.child('binding').observe(v)).not.toThrow();
      expect(() => lh.child('never observed').observe(v)).not.toThrow();
      expect(() => lu.observe(v)).not.toThrow();
    }
    expect(await t.light.metrics()).toBe(before);
  });

  it('gives the same series for the same label value', () => {
    const h = new LightHistogram({ name: 't_h', help: 'h', labelName: 'stage', buckets: [1], registers: [] });
    const c = new LightCounter({ name: 't_c', help: 'h', labelName: 'x', registers: [] });
    expect(h.child('a')).toBe(h.child('a'));
    expect(c.child('a')).toBe(c.child('a'));
  });

  it('refuses bad configurations and the wrong kind of call', () => {
    const make = (over: object) => () =>
      new LightHistogram({ name: 't_h', help: 'h', buckets: [1, 2], registers: [], ...over });
    expect(make({ buckets: [2, 1] })).toThrow(/increasing/);
    expect(make({ buckets: [1, 1] })).toThrow(/increasing/);
    expect(make({ buckets: [1, Infinity] })).toThrow(/finite/);
    expect(make({ labelName: 'le' })).toThrow(/reserved/);
    expect(make({ labelName: 'bad-label' })).toThrow(/label name/);
    expect(make({ name: 'bad name' })).toThrow(/metric name/);
    expect(make({ help: '' })).toThrow(/help/);

    // The compiler already refuses these (`this` types); the checks are for untyped callers.
    const labelled = new LightHistogram({
      name: 't_l',
      help: 'h',
      labelName: 'stage',
      buckets: [1],
      registers: [],
    });
    const plain = new LightHistogram({ name: 't_p', help: 'h', buckets: [1], registers: [] });
    expect(() => (labelled as unknown as LightHistogram).observe(1)).toThrow(/child/);
    expect(() => (plain as unknown as LightHistogram<string>).child('x')).toThrow(/no label/);
  });

  it('refuses a name already registered, as prom-client does', () => {
    const r = new Registry();
    new Counter({ name: 't_dup', help: 'h', registers: [r] });
    expect(() => new LightHistogram({ name: 't_dup', help: 'h', buckets: [1], registers: [r] })).toThrow(
      /already been registered/,
    );
  });
});
