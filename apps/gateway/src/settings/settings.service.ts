import {
  IDENTITY_SETTINGS,
  type NetworkPolicyField,
  type Settings,
  validateSettingsPatch,
} from '@keypin/shared';
import type { Logger } from 'pino';
import type { EntityManager } from 'typeorm';
import type { SettingsRepository, SettingsRow } from './settings.repository';

/** The settings row holding the sealed webhook secret (never returned by the API). */
export const WEBHOOK_SECRET_KEY = 'alert_webhook_secret';

/** What `GET /settings` shows: the settings and whether a webhook secret applies. */
export interface SettingsSnapshot extends Settings {
  alert_webhook_secret_set: boolean;
}

export interface SettingsChange {
  patch: Partial<Settings>;
  /** The webhook secret: absent leaves it, null removes the stored one, else the sealed new one. */
  sealedSecret?: unknown;
  /** The caller accepts that an identity change leaves every binding behind. */
  confirmUnbindAll: boolean;
  /**
   * With `networks` in the patch: the lists the caller named; the others
   * keep their current value (stored, else the environment's). Absent: the
   * patch's `networks` replaces all three.
   */
  networkLists?: readonly NetworkPolicyField[];
}

/** A change of an identity setting refused because bindings exist (nothing was written). */
export interface UnbindRefusal {
  fields: (keyof Settings)[];
  bindings: number;
  banned: number;
}

export type SettingsChangeResult =
  { ok: true; before: SettingsSnapshot; after: SettingsSnapshot } | { ok: false; refusal: UnbindRefusal };

/**
 * The patch to store: a `networks` change naming only some lists keeps the
 * others as they are, so the stored override (which replaces the
 * environment's NETWORK_* whole) holds all three.
 */
function withCurrentNetworks(change: SettingsChange, current: Settings): Partial<Settings> {
  const given = change.patch.networks;
  if (given === undefined || change.networkLists === undefined) return change.patch;
  const networks = { ...current.networks };
  for (const list of change.networkLists) networks[list] = given[list];
  return { ...change.patch, networks };
}

/**
 * Run-time settings: the environment gives the initial values, rows in the
 * `settings` table override them. Reloaded on every change notice (Redis
 * pub/sub or PostgreSQL NOTIFY) and, as a safety net, every few seconds.
 * The hot path reads `current` synchronously. The SQL is in
 * `SettingsRepository`; the rules (merging, the identity-change refusal,
 * the webhook secret) are here.
 */
export class SettingsService {
  private value: Settings;
  private timer: NodeJS.Timeout | null = null;
  private reloading: Promise<void> | null = null;
  private reloadAgain = false;
  private storedSecret: string | null = null;

  constructor(
    private readonly repo: SettingsRepository,
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
          const merged = this.merge(await this.repo.rows(), true);
          this.value = merged.settings;
          this.storedSecret = merged.storedSecret;
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

  /**
   * Applies a change in one transaction, with `audit` writing its record in
   * the same transaction. A change of an identity setting (an actual new
   * value) while bindings exist is refused unless confirmed; then nothing is
   * written. The caller reloads and tells the other instances.
   */
  change(
    change: SettingsChange,
    actor: string,
    audit: (tx: EntityManager, before: SettingsSnapshot, after: SettingsSnapshot) => Promise<void>,
  ): Promise<SettingsChangeResult> {
    return this.repo.inWriteLock(async (tx): Promise<SettingsChangeResult> => {
      // Compared with what is stored, not with this instance's copy (which
      // may be up to a second behind another instance's write).
      const stored = this.merge(await this.repo.rows(tx), false);
      const before: SettingsSnapshot = {
        ...stored.settings,
        alert_webhook_secret_set: (stored.storedSecret ?? this.secrets.envSecret) !== null,
      };

      const fields = IDENTITY_SETTINGS.filter((k) => k in change.patch && change.patch[k] !== before[k]);
      if (fields.length > 0 && !change.confirmUnbindAll) {
        const n = await this.repo.countBindings(tx);
        if (n.total > 0) return { ok: false, refusal: { fields, bindings: n.total, banned: n.banned } };
      }

      const patch = withCurrentNetworks(change, before);
      for (const [key, value] of Object.entries(patch)) {
        await this.repo.upsert(tx, key, value, actor);
      }
      let secretSet = before.alert_webhook_secret_set;
      if (change.sealedSecret === null) {
        await this.repo.remove(tx, WEBHOOK_SECRET_KEY);
        secretSet = this.secrets.envSecret !== null;
      } else if (change.sealedSecret !== undefined) {
        await this.repo.upsert(tx, WEBHOOK_SECRET_KEY, change.sealedSecret, actor);
        secretSet = true;
      }
      const after: SettingsSnapshot = { ...before, ...patch, alert_webhook_secret_set: secretSet };
      await audit(tx, before, after);
      return { ok: true, before, after };
    });
  }

  /** The settings the stored rows give over the defaults, and the opened webhook secret. */
  private merge(rows: SettingsRow[], warn: boolean): { settings: Settings; storedSecret: string | null } {
    const settings: Settings = { ...this.defaults };
    let storedSecret: string | null = null;
    for (const row of rows) {
      if (row.key === WEBHOOK_SECRET_KEY) {
        storedSecret = this.secrets.open(row.value);
        if (storedSecret === null && warn)
          this.logger.warn('the stored webhook secret cannot be opened (HMAC_SECRET changed?)');
        continue;
      }
      const r = validateSettingsPatch({ [row.key]: row.value });
      if (r.ok) Object.assign(settings, r.value);
      else if (warn) this.logger.warn({ setting: row.key }, 'ignoring an invalid stored setting');
    }
    return { settings, storedSecret };
  }
}
