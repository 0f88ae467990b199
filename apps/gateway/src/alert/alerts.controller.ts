import { Controller, Get, Inject, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import { type Alert, MAX_PAGE_SIZE, type Page } from '@keypin/shared';
import { pageOf, parsePaging } from '../admin/common/paging';
import { onlyParams } from '../admin/common/params';
import { AlertAdminRepository } from './alert-admin.repository';

const LIST_PARAMS = new Set(['page', 'page_size']);

@ApiTags('alerts')
@ApiBearerAuth()
@Controller('admin/api')
export class AlertsController {
  constructor(@Inject(AlertAdminRepository) private readonly alerts: AlertAdminRepository) {}

  @Get('alerts')
  @ApiOperation({
    summary: 'Alerts raised, newest first, with their webhook delivery outcome',
    description:
      'delivery_status is pending, delivered or failed; attempts, last_error, last_attempt_at, delivered_at.',
  })
  @ApiQuery({ name: 'page', required: false, type: Number })
  @ApiQuery({ name: 'page_size', required: false, type: Number, description: `At most ${MAX_PAGE_SIZE}` })
  async list(@Query() query: Record<string, unknown>): Promise<Page<Alert>> {
    onlyParams(query, LIST_PARAMS);
    const p = parsePaging(query);
    const { items, total } = await this.alerts.list(p);
    return pageOf(items, total, p);
  }
}
