import type { Logger } from 'pino';

/**
 * Logs at most one line per `intervalMs` for a recurring hot-path event
 * (a downstream outage would otherwise write a line per request), with the
 * number of events folded into it.
 */
export class RateLimitedLog {
  private last = 0;
  private suppressed = 0;

  constructor(
    private readonly logger: Logger,
    private readonly msg: string,
    private readonly intervalMs = 1000,
  ) {}

  warn(fields: Record<string, unknown>): void {
    const now = Date.now();
    if (now - this.last < this.intervalMs) {
      this.suppressed++;
      return;
    }
    this.logger.warn({ ...fields, suppressed: this.suppressed }, this.msg);
    this.last = now;
    this.suppressed = 0;
  }
}
