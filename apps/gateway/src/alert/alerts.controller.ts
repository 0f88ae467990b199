import { Body, Controller, Get, HttpCode, Inject, Param, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiParam, ApiQuery, ApiTags } from '@nestjs/swagger';
import { type Alert, type AlertActionResult, ALERT_STATUSES, MAX_PAGE_SIZE, type Page } from '@keypin/shared';
import { CurrentCaller } from '../admin/common/caller.decorator';
import { pageOf, parsePaging } from '../admin/common/paging';
import { onlyParams, parseId, queryOne, queryOneOf } from '../admin/common/params';
import type { Caller } from '../admin/common/roles';
import { invalid } from '../admin/common/validation';
import { AlertAdminService } from './alert-admin.service';
import { AlertActionView, AlertPageView, AlertView, AllowAlertNetworkDto } from './dto/alert.dto';

const LIST_PARAMS = new Set(['page', 'page_size', 'binding_id', 'status']);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** An alert id from the path: a UUID (422 naming `id` otherwise). */
function alertId(raw: string): string {
  if (!UUID.test(raw)) throw invalid('id', 'must be an alert id (a UUID)');
  return raw.toLowerCase();
}

const ACTION_NOTE =
  'Only an open alert can be acted on (409 alert_not_open otherwise); admin only; audited as ' +
  '`alert.<action>` on target `alert:<id>`; a binding change is enforced by every instance within 1 s.';

@ApiTags('alerts')
@ApiBearerAuth()
@Controller('admin/api')
export class AlertsController {
  constructor(@Inject(AlertAdminService) private readonly alerts: AlertAdminService) {}

  @Get('alerts')
  @ApiOperation({
    summary: 'Alerts raised, newest first, with their status and webhook delivery outcome',
    description:
      'status is open, allowed, banned or dismissed; attempt_networks are the networks the attempts came from. ' +
      'delivery_status is pending, delivered or failed; attempts, last_error, last_attempt_at, delivered_at.',
  })
  @ApiQuery({ name: 'binding_id', required: false, type: Number, description: 'Only this binding' })
  @ApiQuery({ name: 'status', required: false, enum: ALERT_STATUSES })
  @ApiQuery({ name: 'page', required: false, type: Number })
  @ApiQuery({ name: 'page_size', required: false, type: Number, description: `At most ${MAX_PAGE_SIZE}` })
  @ApiOkResponse({ type: AlertPageView })
  async list(@Query() query: Record<string, unknown>): Promise<Page<Alert>> {
    onlyParams(query, LIST_PARAMS);
    const p = parsePaging(query);
    const rawBinding = queryOne(query, 'binding_id');
    const { items, total } = await this.alerts.list(
      {
        bindingId: rawBinding === null ? null : parseId(rawBinding, 'binding_id'),
        status: queryOneOf(query, 'status', ALERT_STATUSES),
      },
      p,
    );
    return pageOf(items, total, p);
  }

  @Get('alerts/:id')
  @ApiOperation({ summary: 'One alert' })
  @ApiParam({ name: 'id', format: 'uuid' })
  @ApiOkResponse({ type: AlertView })
  get(@Param('id') raw: string): Promise<Alert> {
    return this.alerts.get(alertId(raw));
  }

  @Post('alerts/:id/allow-network')
  @HttpCode(200)
  @ApiOperation({
    summary: "Allow one of the alert's networks for its key (added to allowed_ips, rule multiple)",
    description:
      `422 when the network is not one of the alert's attempt_networks; 409 binding_banned when the key is ` +
      `banned; 404 when the binding no longer exists. ${ACTION_NOTE}`,
  })
  @ApiParam({ name: 'id', format: 'uuid' })
  @ApiOkResponse({ type: AlertActionView })
  allowNetwork(
    @Param('id') raw: string,
    @Body() body: AllowAlertNetworkDto,
    @CurrentCaller() caller: Caller,
  ): Promise<AlertActionResult> {
    return this.alerts.allowNetwork(caller, alertId(raw), body.network);
  }

  @Post('alerts/:id/ban')
  @HttpCode(200)
  @ApiOperation({
    summary: "Ban the alert's key: every request with it is refused with 403 key_banned",
    description: `404 when the binding no longer exists. ${ACTION_NOTE}`,
  })
  @ApiParam({ name: 'id', format: 'uuid' })
  @ApiOkResponse({ type: AlertActionView })
  ban(@Param('id') raw: string, @CurrentCaller() caller: Caller): Promise<AlertActionResult> {
    return this.alerts.ban(caller, alertId(raw));
  }

  @Post('alerts/:id/dismiss')
  @HttpCode(200)
  @ApiOperation({ summary: 'Dismiss the alert, leaving the binding as it is', description: ACTION_NOTE })
  @ApiParam({ name: 'id', format: 'uuid' })
  @ApiOkResponse({ type: AlertActionView })
  dismiss(@Param('id') raw: string, @CurrentCaller() caller: Caller): Promise<AlertActionResult> {
    return this.alerts.dismiss(caller, alertId(raw));
  }
}
