import { type InterceptEvent, requestsOf } from './intercept.types';

/**
 * What makes two refused requests of the same second one record: the key
 * (binding id and masked key, since a refusal may come without a binding),
 * the attempted IP, the reason and the mode (a monitor-mode record must not
 * absorb enforced ones).
 */
function groupKey(e: InterceptEvent): string {
  return `${e.bindingId}\u0000${e.tokenDisplay}\u0000${e.attemptIp}\u0000${e.reason}\u0000${e.enforced ? 'e' : 'm'}`;
}

const secondOf = (e: InterceptEvent): number => Math.floor(e.at.getTime() / 1000);

/**
 * The recorder's buffer, merging on the way in: the first refused request of
 * a (key, IP, reason, UTC second) becomes a record (its id is that request's
 * id); later ones of the same group and second only raise its `count` while
 * it is still here. So a key hammered at full speed from one address costs
 * one record per second, whatever the request rate.
 *
 * A record leaves through {@link take} and is never changed afterwards: its
 * id and count travel together through the queue, a direct write or the
 * spool, so every replay of that id carries the same count and the
 * idempotent INSERT stores it exactly once. A request of a second whose
 * record has already left starts a new record.
 */
export class InterceptBuffer {
  /** Open records by UTC second, then by group. Usually one or two seconds. */
  private readonly bySecond = new Map<number, Map<string, InterceptEvent>>();
  /** Records handed back after a failed save: kept as they are, never merged into. */
  private held: InterceptEvent[] = [];
  private openRecords = 0;
  /** The last second used and its map, so a burst skips the outer lookup. */
  private lastSecond = Number.NaN;
  private lastGroups: Map<string, InterceptEvent> | undefined;

  /** Records waiting here. */
  get size(): number {
    return this.openRecords + this.held.length;
  }

  /** Adds one refused request (hot path: two map lookups). Returns the number of records waiting. */
  add(e: InterceptEvent): number {
    const groups = this.groupsOf(secondOf(e));
    const key = groupKey(e);
    const open = groups.get(key);
    if (open === undefined) {
      groups.set(key, e);
      this.openRecords++;
    } else {
      open.count = requestsOf(open) + requestsOf(e);
    }
    return this.size;
  }

  /**
   * Takes the records out, oldest second first: all of them, or all but
   * those of `keepSecond` (the second still running, whose records may yet
   * grow). Records taken are never changed again.
   */
  take(keepSecond?: number): InterceptEvent[] {
    const out = this.held;
    this.held = [];
    const seconds = [...this.bySecond.keys()].sort((a, b) => a - b);
    for (const second of seconds) {
      if (second === keepSecond) continue;
      const groups = this.bySecond.get(second)!;
      this.bySecond.delete(second);
      this.openRecords -= groups.size;
      for (const r of groups.values()) out.push(r);
      if (second === this.lastSecond) {
        // Later requests of this second must start a new record, not touch one that has left.
        this.lastSecond = Number.NaN;
        this.lastGroups = undefined;
      }
    }
    return out;
  }

  /**
   * Takes back records whose save failed. They may have reached PostgreSQL
   * all the same (a failure after the commit), so they keep their ids and
   * counts and nothing is merged into them.
   */
  putBack(records: readonly InterceptEvent[]): void {
    for (const r of records) this.held.push(r);
  }

  private groupsOf(second: number): Map<string, InterceptEvent> {
    if (second === this.lastSecond && this.lastGroups !== undefined) return this.lastGroups;
    let groups = this.bySecond.get(second);
    if (groups === undefined) {
      groups = new Map();
      this.bySecond.set(second, groups);
    }
    this.lastSecond = second;
    this.lastGroups = groups;
    return groups;
  }
}
