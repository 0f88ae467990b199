import { Body, Controller, Get, Inject, Put } from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiBody,
  ApiConflictResponse,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
  ApiUnprocessableEntityResponse,
} from '@nestjs/swagger';
import type { SettingsResponse } from '@keypin/shared';
import { AdminContext } from '../admin/admin-context';
import { CurrentCaller } from '../admin/common/caller.decorator';
import { type Caller } from '../admin/common/roles';
import {
  parseSettingsRequest,
  SETTINGS_RESPONSE_SCHEMA,
  SETTINGS_UPDATE_SCHEMA,
  wouldUnbindAll,
} from './settings-request';

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
  @ApiOkResponse({ schema: SETTINGS_RESPONSE_SCHEMA })
  get(): SettingsResponse {
    return this.view();
  }

  @Put('settings')
  @ApiOperation({
    summary: 'Change any subset of the settings; every instance applies it within 1 s',
    description:
      'relay, token_normalize and key_case decide every key’s identity: changing one to a new value while ' +
      'bindings exist is refused with 409 would_unbind_all (nothing changes) unless the body also has ' +
      '"confirm_unbind_all": true.',
  })
  @ApiBody({ schema: SETTINGS_UPDATE_SCHEMA })
  @ApiOkResponse({ schema: SETTINGS_RESPONSE_SCHEMA })
  @ApiConflictResponse({
    description: 'would_unbind_all: an identity setting change needs confirm_unbind_all',
  })
  @ApiUnprocessableEntityResponse({ description: 'validation_failed, naming the field' })
  async update(@Body() body: unknown, @CurrentCaller() caller: Caller): Promise<SettingsResponse> {
    const req = parseSettingsRequest(body, this.ctx.rt.config.alertWebhookAllowPrivate);
    const { secretBox } = this.ctx.rt;
    const result = await this.ctx.rt.settings.change(
      {
        patch: req.patch,
        sealedSecret:
          req.secret === undefined ? undefined : req.secret === null ? null : secretBox.seal(req.secret),
        confirmUnbindAll: req.confirmUnbindAll,
      },
      caller.username,
      (tx, before, after) => {
        const audited: Record<string, unknown> = { ...after };
        if (req.secret !== undefined)
          audited['alert_webhook_secret'] = req.secret === null ? 'cleared' : 'changed';
        return this.ctx.audit.record(caller, 'settings.update', 'settings', before, audited, tx);
      },
    );
    if (!result.ok) throw wouldUnbindAll(result.refusal);
    await this.ctx.rt.changeFeed.publishSettings(this.ctx.rt.redis).catch(() => undefined);
    await this.ctx.rt.settings.reload();
    return this.view();
  }
}
