/**
 * Month arithmetic of the intercept log's partitions (docs/data.md): one
 * partition per UTC month, named `intercept_logs_pYYYY_MM` (the name
 * `keypin_intercept_partition()` in the database gives it), covering
 * [first instant of the month, first instant of the next). Pure functions.
 */

/** The partitions' name prefix; the DEFAULT partition is `intercept_logs_default`. */
export const PARTITION_PREFIX = 'intercept_logs_p';

const NAME_RE = /^intercept_logs_p(\d{4})_(\d{2})$/;

const DAY_MS = 86_400_000;

/** The first instant (UTC) of the month `t` falls in. */
export function monthStart(t: Date): Date {
  return new Date(Date.UTC(t.getUTCFullYear(), t.getUTCMonth(), 1));
}

/** The first instant (UTC) of the month `n` months after (before, when negative) the one `t` falls in. */
export function addMonths(t: Date, n: number): Date {
  return new Date(Date.UTC(t.getUTCFullYear(), t.getUTCMonth() + n, 1));
}

/** `YYYY-MM-DD` of a month's first day, as the database function takes it. */
export function monthDate(month: Date): string {
  return monthStart(month).toISOString().slice(0, 10);
}

/** The partition holding the month `t` falls in: `intercept_logs_p2026_12`. */
export function partitionName(t: Date): string {
  const m = monthStart(t);
  return `${PARTITION_PREFIX}${String(m.getUTCFullYear()).padStart(4, '0')}_${String(m.getUTCMonth() + 1).padStart(2, '0')}`;
}

/** The month (its first instant) a partition name stands for; null for any other name. */
export function monthOfPartition(name: string): Date | null {
  const m = NAME_RE.exec(name);
  if (m === null) return null;
  const month = Number(m[2]);
  if (month < 1 || month > 12) return null;
  return new Date(Date.UTC(Number(m[1]), month - 1, 1));
}

/** The months from the one `now` falls in to `ahead` months after it (inclusive): those kept ready. */
export function upcomingMonths(now: Date, ahead: number): Date[] {
  const out: Date[] = [];
  for (let i = 0; i <= ahead; i++) out.push(addMonths(now, i));
  return out;
}

/**
 * Where retention cuts for `days` of retention at `now`:
 * - `cutoff`: `now - days`; records older than this are past retention;
 * - `dropBefore`: the first instant of the month `cutoff` falls in. Whole
 *   months end at or before it, so that is what is removed: every partition
 *   of an earlier month, and rows of the DEFAULT partition older than it.
 *   A month is kept until all of it is past retention.
 */
export function retentionCut(now: Date, days: number): { cutoff: Date; dropBefore: Date } {
  const cutoff = new Date(now.getTime() - days * DAY_MS);
  return { cutoff, dropBefore: monthStart(cutoff) };
}

/** Of these partition names, those of months that end at or before `dropBefore`, oldest first. */
export function droppablePartitions(names: readonly string[], dropBefore: Date): string[] {
  return names
    .map((name) => ({ name, month: monthOfPartition(name) }))
    .filter((p): p is { name: string; month: Date } => p.month !== null)
    .filter((p) => addMonths(p.month, 1).getTime() <= dropBefore.getTime())
    .sort((a, b) => a.month.getTime() - b.month.getTime())
    .map((p) => p.name);
}
