import { Body, Controller, Get, Inject, Put } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiTags } from '@nestjs/swagger';
import { type Settings, type SettingsResponse, SETTINGS_KEYS, validateSettingsPatch } from '@keypin/shared';
import { checkWebhookUrl } from '../../alert/url-guard';
import { WEBHOOK_SECRET_KEY } from '../../settings/settings.service';
import { AdminContext } from '../admin-context';
import { CurrentCaller } from '../common/caller.decorator';
import { type Caller } from '../common/roles';
import { invalid } from '../common/validation';

const MAX_SECRET_LENGTH = 512;

@ApiTags('settings')
@ApiBearerAuth()
@Controller('admin/api')
export class SettingsController {
  constructor(@Inject(AdminContext) private readonly ctx: AdminContext) {}

  private view(): SettingsResponse {
    return {
      ...this.ctx.rt.settings.current,
      alert_webhook_secret_set: this.ctx.rt.settings.webhookSecret() !== null,
    };
  }

  @Get('settings')
  @ApiOperation({ summary: 'The run-time settings (the webhook secret is write-only)' })
  get(): SettingsResponse {
    return this.view();
  }

  @Put('settings')
  @ApiOperation({
    summary: 'Change any subset of the settings; every instance applies it within 1 s',
    description: `Fields: ${SETTINGS_KEYS.join(', ')}, alert_webhook_secret (write-only; null clears it).`,
  })
  @ApiBody({ schema: { type: 'object', additionalProperties: true } })
  async update(@Body() body: unknown, @CurrentCaller() caller: Caller): Promise<SettingsResponse> {
    if (typeof body !== 'object' || body === null || Array.isArray(body))
      throw invalid('body', 'must be a JSON object');
    const { [WEBHOOK_SECRET_KEY]: secret, ...rest } = body as Record<string, unknown>;
    const patch = validateSettingsPatch(rest);
    if (!patch.ok) throw invalid(patch.field, patch.message);
    const secretGiven = WEBHOOK_SECRET_KEY in body;
    if (
      secretGiven &&
      secret !== null &&
      (typeof secret !== 'string' || secret.length === 0 || secret.length > MAX_SECRET_LENGTH)
    ) {
      throw invalid(WEBHOOK_SECRET_KEY, `must be a string of 1 to ${MAX_SECRET_LENGTH} characters, or null`);
    }
    const url = patch.value.alert_webhook_url;
    if (typeof url === 'string') {
      try {
        checkWebhookUrl(url, this.ctx.rt.config.alertWebhookAllowPrivate);
      } catch (err) {
        throw invalid('alert_webhook_url', (err as Error).message);
      }
    }
    if (Object.keys(patch.value).length === 0 && !secretGiven)
      throw invalid('body', 'names no setting to change');

    const before = this.view();
    await this.ctx.rt.dataSource.transaction(async (tx) => {
      for (const [key, value] of Object.entries(patch.value) as [keyof Settings, unknown][]) {
        await tx.query(
          `INSERT INTO settings (key, value, updated_at, updated_by) VALUES ($1, $2::jsonb, now(), $3)
           ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now(), updated_by = EXCLUDED.updated_by`,
          [key, JSON.stringify(value), caller.username],
        );
      }
      if (secretGiven) {
        if (secret === null) await tx.query(`DELETE FROM settings WHERE key = $1`, [WEBHOOK_SECRET_KEY]);
        else {
          await tx.query(
            `INSERT INTO settings (key, value, updated_at, updated_by) VALUES ($1, $2::jsonb, now(), $3)
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now(), updated_by = EXCLUDED.updated_by`,
            [
              WEBHOOK_SECRET_KEY,
              JSON.stringify(this.ctx.rt.secretBox.seal(secret as string)),
              caller.username,
            ],
          );
        }
      }
      const after = {
        ...before,
        ...patch.value,
        alert_webhook_secret_set: secretGiven ? secret !== null : before.alert_webhook_secret_set,
      };
      const auditAfter: Record<string, unknown> = { ...after };
      if (secretGiven) auditAfter['alert_webhook_secret'] = secret === null ? 'cleared' : 'changed';
      await this.ctx.audit.record(caller, 'settings.update', 'settings', before, auditAfter, tx);
    });
    await this.ctx.rt.changeFeed.publishSettings(this.ctx.rt.redis).catch(() => undefined);
    await this.ctx.rt.settings.reload();
    return this.view();
  }
}
