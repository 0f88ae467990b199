import { Batcher } from '../infra/batching/batcher';
import { type InterceptEvent, requestsOf } from './intercept.types';

/** Records buffered before a flush of all of them is forced (the second still running included). */
export const MAX_BUFFERED_RECORDS = 1000;

const secondOf = (e: InterceptEvent): number => Math.floor(e.at.getTime() / 1000);

/**
 * What makes two refused requests one record: the UTC second, the key
 * (binding id and masked key, since a refusal may come without a binding),
 * the attempted IP, the reason and the mode (a monitor-mode record must not
 * absorb enforced ones).
 */
export function interceptKey(e: InterceptEvent): string {
  const second = secondOf(e);
  if (second !== keySecond) {
    keySecond = second;
    keyPrefix = `${second}\u0000`;
  }
  const who = e.bindingId ?? `k${e.keyRef ?? ''}`;
  return `${keyPrefix}${who}\u0000${e.tokenDisplay}\u0000${e.attemptIp}\u0000${e.reason}\u0000${e.enforced ? 'e' : 'm'}`;
}

/** The last second seen and its key prefix: a burst skips turning the second into text. */
let keySecond = Number.NaN;
let keyPrefix = '';

/** A later request of the record's group and second: only the count grows. */
function mergeIntercept(into: InterceptEvent, from: InterceptEvent): void {
  into.count = requestsOf(into) + requestsOf(from);
}

/** The timer hands on the records of seconds that are over; the running second's may still grow. */
function secondIsOver(e: InterceptEvent, now: number): boolean {
  return secondOf(e) !== Math.floor(now / 1000);
}

/** Oldest second first (records of one second keep the order they were opened in). */
function bySecond(a: InterceptEvent, b: InterceptEvent): number {
  return secondOf(a) - secondOf(b);
}

export interface InterceptBufferOptions {
  flushMs: number;
  /** Default {@link MAX_BUFFERED_RECORDS}. */
  maxRecords?: number;
  onError?: (err: unknown, batch: readonly InterceptEvent[]) => void;
}

/**
 * The recorder's buffer, merging on the way in (a {@link Batcher} with the
 * intercept policy): the first refused request of a (key, IP, reason, mode,
 * UTC second) becomes a record (its id is that request's id); later ones of
 * the same group and second only raise its `count` while it is still here.
 * So a key hammered at full speed from one address costs one record per
 * second, whatever the request rate.
 *
 * Every `flushMs` the records of the seconds that are over go to `write`,
 * oldest second first (all of them at `maxRecords` or on {@link flush}/
 * {@link stop}). A record
 * that has left is never changed afterwards: its id and count travel
 * together through the queue, a direct write or the spool, so every replay
 * of that id carries the same count and the idempotent INSERT stores it
 * exactly once. A request of a second whose record has already left starts
 * a new record. A batch `write` rejected is put back as it is (the `hold`
 * policy: it may have been committed all the same) and handed on first by
 * the next flush.
 */
export class InterceptBuffer extends Batcher<string, InterceptEvent> {
  constructor(write: (batch: InterceptEvent[]) => Promise<unknown>, options: InterceptBufferOptions) {
    super({
      keyOf: interceptKey,
      merge: mergeIntercept,
      write,
      intervalMs: options.flushMs,
      onFailure: 'hold',
      maxSize: options.maxRecords ?? MAX_BUFFERED_RECORDS,
      due: secondIsOver,
      order: bySecond,
      onError: options.onError,
    });
  }
}
