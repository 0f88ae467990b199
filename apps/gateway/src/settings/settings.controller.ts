import { Body, Controller, Get, HttpCode, Inject, Post, Put } from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiBody,
  ApiConflictResponse,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
  ApiUnprocessableEntityResponse,
} from '@nestjs/swagger';
import type { SettingsResponse, TestAlertResult } from '@keypin/shared';
import { CurrentCaller } from '../admin/common/caller.decorator';
import { type Caller } from '../admin/common/roles';
import { SettingsAdminService } from './settings-admin.service';
import {
  checkTestAlertBody,
  SETTINGS_RESPONSE_SCHEMA,
  SETTINGS_UPDATE_SCHEMA,
  TEST_ALERT_RESULT_SCHEMA,
} from './settings-request';

@ApiTags('settings')
@ApiBearerAuth()
@Controller('admin/api')
export class SettingsController {
  constructor(@Inject(SettingsAdminService) private readonly settings: SettingsAdminService) {}

  @Get('settings')
  @ApiOperation({ summary: 'The run-time settings (the webhook secret is write-only)' })
  @ApiOkResponse({ schema: SETTINGS_RESPONSE_SCHEMA })
  get(): SettingsResponse {
    return this.settings.view();
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
  update(@Body() body: unknown, @CurrentCaller() caller: Caller): Promise<SettingsResponse> {
    return this.settings.update(caller, body);
  }

  @Post('settings/test-alert')
  @HttpCode(200)
  @ApiOperation({
    summary:
      'Send one sample alert through the saved webhook format and URL, and answer what the receiver said',
    description:
      'Sent once, without retries, with the saved alert_webhook_format, alert_webhook_url and webhook secret, ' +
      'through the same SSRF guard and timeout as real alerts; the answer is judged as a real delivery would be ' +
      '(docs/alert-formats.md). Admin only; audited as settings.test_alert. No body (or {}).',
  })
  @ApiOkResponse({ schema: TEST_ALERT_RESULT_SCHEMA })
  @ApiUnprocessableEntityResponse({
    description:
      'validation_failed naming alert_webhook_url: no webhook URL is saved, or the SSRF guard refuses it (nothing is sent)',
  })
  testAlert(@Body() body: unknown, @CurrentCaller() caller: Caller): Promise<TestAlertResult> {
    checkTestAlertBody(body);
    return this.settings.testAlert(caller);
  }
}
