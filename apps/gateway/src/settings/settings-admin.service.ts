import type { SettingsResponse } from '@keypin/shared';
import type { Redis } from 'ioredis';
import type { AuditRepository } from '../audit/audit.repository';
import type { Caller } from '../admin/common/roles';
import type { ChangeFeed } from '../infra/change-feed/change-feed.service';
import type { SecretBox } from './secret-box';
import { parseSettingsRequest, wouldUnbindAll } from './settings-request';
import type { SettingsService } from './settings.service';

export interface SettingsAdminDeps {
  settings: SettingsService;
  secretBox: SecretBox;
  audit: AuditRepository;
  changeFeed: ChangeFeed;
  publisher: Redis;
  /** ALERT_WEBHOOK_ALLOW_PRIVATE: whether a webhook URL may point inside. */
  allowPrivateWebhook: boolean;
}

/**
 * The admin side of settings: the view (the webhook secret only as "set"),
 * and changes, committed with their audit row, then announced so every
 * instance applies them within a second.
 */
export class SettingsAdminService {
  constructor(private readonly d: SettingsAdminDeps) {}

  view(): SettingsResponse {
    return { ...this.d.settings.current, alert_webhook_secret_set: this.d.settings.webhookSecret() !== null };
  }

  async update(caller: Caller, body: unknown): Promise<SettingsResponse> {
    const req = parseSettingsRequest(body, this.d.allowPrivateWebhook);
    const result = await this.d.settings.change(
      {
        patch: req.patch,
        sealedSecret:
          req.secret === undefined
            ? undefined
            : req.secret === null
              ? null
              : this.d.secretBox.seal(req.secret),
        confirmUnbindAll: req.confirmUnbindAll,
        networkLists: req.networkLists,
      },
      caller.username,
      (tx, before, after) => {
        const audited: Record<string, unknown> = { ...after };
        if (req.secret !== undefined)
          audited['alert_webhook_secret'] = req.secret === null ? 'cleared' : 'changed';
        return this.d.audit.record(caller, 'settings.update', 'settings', before, audited, tx);
      },
    );
    if (!result.ok) throw wouldUnbindAll(result.refusal);
    await this.d.changeFeed.publishSettings(this.d.publisher).catch(() => undefined);
    await this.d.settings.reload();
    return this.view();
  }
}
