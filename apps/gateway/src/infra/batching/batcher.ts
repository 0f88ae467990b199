/**
 * What happens to a batch whose `write` failed:
 * - `merge`: its values are merged back into what has accumulated since
 *   (sums stay exact as long as a failed write changed nothing, e.g. one
 *   statement that rolled back);
 * - `hold`: its values are kept exactly as they were, ahead of everything
 *   else, never merged into, and handed on first by the next flush. For
 *   values that may have been stored all the same (a failure after the
 *   commit) and are written idempotently by id: merging into them would
 *   change what a replay of that id carries.
 */
export type FailurePolicy = 'merge' | 'hold';

export interface BatcherOptions<K, V> {
  /** The key a value accumulates under. */
  keyOf: (value: V) => K;
  /** Folds `from` into `into` (same key). Used by {@link Batcher.add} and by the `merge` policy. */
  merge: (into: V, from: V) => void;
  /**
   * Hands a batch on. A rejection sends the batch back by `onFailure`;
   * resolving means the batch is done with (the batcher keeps nothing).
   */
  write: (batch: V[]) => Promise<unknown>;
  /** Period of the timer flush (the timer is `unref`'d). */
  intervalMs: number;
  /** Default `merge`. */
  onFailure?: FailurePolicy;
  /** A flush of everything is started when a new key brings the batcher to this many values. */
  maxSize?: number;
  /**
   * Which values the timer flush hands on (`now` is the tick's `Date.now()`);
   * the rest wait for a later tick. Values held after a failure are always
   * due. Absent: all of them. {@link Batcher.flush} ignores it.
   */
  due?: (value: V, now: number) => boolean;
  /**
   * Order of the values a flush takes from the map (a stable sort; held
   * values still come first). Absent: the order their keys were first added.
   */
  order?: (a: V, b: V) => number;
  /** Told about each failed write (after the batch was sent back). */
  onError?: (err: unknown, batch: readonly V[]) => void;
}

/** Running totals, for metrics and tests. */
export interface BatcherCounters {
  /** Batches handed to `write`. */
  flushes: number;
  /** Batches whose `write` failed. */
  failures: number;
  /** Values in batches written successfully. */
  written: number;
  /** Values sent back after a failed write (merged back or held). */
  returned: number;
  /** Timer ticks that found a flush in flight and did nothing. */
  busyTicks: number;
}

const DONE: Promise<void> = Promise.resolve();

/**
 * Buffer, flush on a timer, send back on failure: the one batching
 * primitive behind the recorders (usage, daily stats, intercepts).
 *
 * Values accumulate in a map by key — the hot path is {@link get} and an
 * in-place update, or {@link add}, which merges into the value already
 * there — and leave in batches through `write`:
 * - every `intervalMs` (timer `unref`'d), the values that are `due`;
 * - on {@link flush} (and when `maxSize` is reached), all of them;
 * - on {@link stop}, all of them, after the flush in flight.
 *
 * One flush is in flight at a time: a timer tick during one does nothing,
 * and {@link flush} waits for it, then hands on what has accumulated. A
 * value is in exactly one place at any moment: the map, the held list or
 * the batch in flight. `write` is never called with an empty batch; held
 * values come first in it, then the rest, by `order`.
 */
export class Batcher<K, V> {
  private pending = new Map<K, V>();
  /** Values of failed batches under the `hold` policy, oldest first. */
  private held: V[] = [];
  private flight: Promise<void> | null = null;
  private inFlightSize = 0;
  /** A flush of everything, waiting for the one in flight (shared by every caller meanwhile). */
  private queued: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly policy: FailurePolicy;
  private readonly maxSize: number;

  readonly counters: BatcherCounters = { flushes: 0, failures: 0, written: 0, returned: 0, busyTicks: 0 };

  constructor(private readonly opts: BatcherOptions<K, V>) {
    this.policy = opts.onFailure ?? 'merge';
    this.maxSize = opts.maxSize ?? Number.POSITIVE_INFINITY;
  }

  /** Starts the timer flush. */
  start(): void {
    if (this.timer !== null) return;
    this.timer = setInterval(() => void this.flushDue(), this.opts.intervalMs);
    this.timer.unref();
  }

  /** Values waiting (accumulating or held), not counting a batch in flight. */
  get size(): number {
    return this.pending.size + this.held.length;
  }

  /** Values in the batch being written now (0 when none is). */
  get inFlight(): number {
    return this.inFlightSize;
  }

  /** Hot path: the value accumulating under `key`, to update in place. */
  get(key: K): V | undefined {
    return this.pending.get(key);
  }

  /** Hot path: starts accumulating `value` under `key` (which must be `keyOf(value)` and not present). */
  set(key: K, value: V): void {
    this.pending.set(key, value);
    if (this.size >= this.maxSize) void this.flush();
  }

  /** Hot path: adds `value`, or merges it into the value already under its key. */
  add(value: V): void {
    const key = this.opts.keyOf(value);
    const cur = this.pending.get(key);
    if (cur === undefined) this.set(key, value);
    else this.opts.merge(cur, value);
  }

  /**
   * The timer's flush: hands on the values that are due (held ones first),
   * unless a flush is in flight. Resolves when that batch is done with.
   */
  flushDue(now = Date.now()): Promise<void> {
    if (this.flight !== null) {
      this.counters.busyTicks++;
      return this.flight;
    }
    return this.launch(this.opts.due === undefined ? this.takeAll() : this.takeDue(now));
  }

  /**
   * Hands on everything: after the flush in flight, if there is one.
   * Never rejects; a failed batch is sent back by the failure policy.
   */
  flush(): Promise<void> {
    if (this.flight === null) return this.launch(this.takeAll());
    this.queued ??= this.flight.then(() => {
      this.queued = null;
      return this.flush();
    });
    return this.queued;
  }

  /**
   * Stops the timer and flushes everything, waiting for the flush in
   * flight first. Values a failed write sent back stay here (see
   * {@link size}); the caller decides whether to try again or {@link drain}.
   */
  async stop(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    await this.flush();
  }

  /** Sends a batch back by the failure policy (as after a failed write). */
  putBack(batch: readonly V[]): void {
    this.counters.returned += batch.length;
    if (this.policy === 'hold') {
      for (const v of batch) this.held.push(v);
      return;
    }
    const { keyOf, merge } = this.opts;
    for (const v of batch) {
      const key = keyOf(v);
      const cur = this.pending.get(key);
      if (cur === undefined) this.pending.set(key, v);
      else merge(cur, v);
    }
  }

  /** Takes every waiting value out without writing it (held ones first). */
  drain(): V[] {
    return this.takeAll();
  }

  private takeAll(): V[] {
    if (this.pending.size === 0) return this.takeHeld();
    const taken = this.pending;
    this.pending = new Map();
    return this.withHeld([...taken.values()]);
  }

  private takeDue(now: number): V[] {
    const due = this.opts.due!;
    const taken: V[] = [];
    for (const [key, v] of this.pending) {
      if (!due(v, now)) continue;
      this.pending.delete(key);
      taken.push(v);
    }
    return this.withHeld(taken);
  }

  private takeHeld(): V[] {
    const out = this.held;
    this.held = [];
    return out;
  }

  /** The held values, then `taken` in order. */
  private withHeld(taken: V[]): V[] {
    if (this.opts.order !== undefined && taken.length > 1) taken.sort(this.opts.order);
    if (this.held.length === 0) return taken;
    const out = this.takeHeld();
    for (const v of taken) out.push(v);
    return out;
  }

  private launch(batch: V[]): Promise<void> {
    if (batch.length === 0) return DONE;
    this.counters.flushes++;
    this.inFlightSize = batch.length;
    let written: Promise<unknown>;
    try {
      written = this.opts.write(batch);
    } catch (err) {
      written = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    const flight = written
      .then(
        () => {
          this.counters.written += batch.length;
        },
        (err: unknown) => {
          this.counters.failures++;
          this.putBack(batch);
          try {
            this.opts.onError?.(err, batch);
          } catch {
            // a logging hook must not break the batcher
          }
        },
      )
      .finally(() => {
        this.flight = null;
        this.inFlightSize = 0;
      });
    this.flight = flight;
    return flight;
  }
}
