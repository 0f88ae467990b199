/**
 * Requests in flight per client IP on this instance (MAX_INFLIGHT_PER_IP):
 * one map update to take a slot, one to give it back. An IP with nothing in
 * flight has no entry, so the map holds only the IPs being served right now.
 */
export class InflightLimiter {
  private readonly counts = new Map<string, number>();
  private total = 0;

  /** `max` 0 = unlimited (still counted, for the metrics). */
  constructor(private readonly max: number) {}

  /** Takes a slot for `ip`; false (and nothing taken) when it holds `max` already. */
  tryAcquire(ip: string): boolean {
    const n = this.counts.get(ip) ?? 0;
    if (this.max !== 0 && n >= this.max) return false;
    this.counts.set(ip, n + 1);
    this.total++;
    return true;
  }

  /** Gives back a slot taken by `tryAcquire`; call exactly once per slot. */
  release(ip: string): void {
    const n = this.counts.get(ip);
    if (n === undefined) return;
    if (n <= 1) this.counts.delete(ip);
    else this.counts.set(ip, n - 1);
    this.total--;
  }

  /** Slots held by `ip`. */
  held(ip: string): number {
    return this.counts.get(ip) ?? 0;
  }

  get requests(): number {
    return this.total;
  }

  get clientIps(): number {
    return this.counts.size;
  }
}
