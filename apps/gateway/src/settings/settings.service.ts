import { type Settings, validateSettingsPatch } from '@keypin/shared';
import type { Logger } from 'pino';
import type { DataSource } from 'typeorm';

type Row = { key: string; value: unknown };

/**
 * Run-time settings: the environment gives the initial values, rows in the
 * `settings` table override them. Reloaded on every change notice (Redis
 * pub/sub or PostgreSQL NOTIFY) and, as a safety net, every few seconds.
 * The hot path reads `current` synchronously.
 */
export class SettingsService {
  private value: Settings;
  private timer: NodeJS.Timeout | null = null;
  private reloading: Promise<void> | null = null;
  private reloadAgain = false;

  constructor(
    private readonly ds: DataSource,
    private readonly defaults: Settings,
    private readonly logger: Logger,
    private readonly pollMs = 5000,
  ) {
    this.value = { ...defaults };
  }

  get current(): Settings {
    return this.value;
  }

  async start(): Promise<void> {
    await this.reload();
    this.timer = setInterval(() => void this.reload(), this.pollMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Re-reads the table; concurrent calls collapse into at most one more read. */
  reload(): Promise<void> {
    if (this.reloading) {
      this.reloadAgain = true;
      return this.reloading;
    }
    this.reloading = (async () => {
      do {
        this.reloadAgain = false;
        try {
          const rows: Row[] = await this.ds.query('SELECT key, value FROM settings');
          this.value = this.merge(rows);
        } catch (err) {
          this.logger.debug(
            { err: (err as Error).message },
            'settings reload failed; keeping current values',
          );
        }
      } while (this.reloadAgain);
    })().finally(() => {
      this.reloading = null;
    });
    return this.reloading;
  }

  private merge(rows: Row[]): Settings {
    const next: Settings = { ...this.defaults };
    for (const row of rows) {
      const r = validateSettingsPatch({ [row.key]: row.value });
      if (r.ok) Object.assign(next, r.value);
      else this.logger.warn({ setting: row.key }, 'ignoring an invalid stored setting');
    }
    return next;
  }
}
