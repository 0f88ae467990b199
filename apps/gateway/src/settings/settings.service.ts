import { type Settings, validateSettingsPatch } from '@keypin/shared';
import type { Logger } from 'pino';
import type { DataSource } from 'typeorm';

type Row = { key: string; value: unknown };

/** The settings row holding the sealed webhook secret (never returned by the API). */
export const WEBHOOK_SECRET_KEY = 'alert_webhook_secret';

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
  private storedSecret: string | null = null;

  constructor(
    private readonly ds: DataSource,
    private readonly defaults: Settings,
    private readonly logger: Logger,
    /** The webhook secret from the environment, and how to open a stored (sealed) one. */
    private readonly secrets: { envSecret: string | null; open: (sealed: unknown) => string | null },
    private readonly pollMs = 5000,
  ) {
    this.value = { ...defaults };
  }

  get current(): Settings {
    return this.value;
  }

  /** The webhook signing secret: the one set through the admin API, else ALERT_WEBHOOK_SECRET. */
  webhookSecret(): string | null {
    return this.storedSecret ?? this.secrets.envSecret;
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
    this.storedSecret = null;
    for (const row of rows) {
      if (row.key === WEBHOOK_SECRET_KEY) {
        this.storedSecret = this.secrets.open(row.value);
        if (this.storedSecret === null)
          this.logger.warn('the stored webhook secret cannot be opened (HMAC_SECRET changed?)');
        continue;
      }
      const r = validateSettingsPatch({ [row.key]: row.value });
      if (r.ok) Object.assign(next, r.value);
      else this.logger.warn({ setting: row.key }, 'ignoring an invalid stored setting');
    }
    return next;
  }
}
