import { Controller, Get, Inject, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import { type Alert, MAX_PAGE_SIZE, type Page } from '@keypin/shared';
import { AdminContext } from '../admin/admin-context';
import { pageOf, parsePaging } from '../admin/common/paging';
import { invalid } from '../admin/common/validation';
import { AlertAdminRepository } from './alert-admin.repository';

const PARAMS = ['page', 'page_size'];

@ApiTags('alerts')
@ApiBearerAuth()
@Controller('admin/api')
export class AlertsController {
  private readonly alerts: AlertAdminRepository;

  constructor(@Inject(AdminContext) private readonly ctx: AdminContext) {
    this.alerts = new AlertAdminRepository(ctx.rt.dataSource);
  }

  @Get('alerts')
  @ApiOperation({
    summary: 'Alerts raised, newest first, with their webhook delivery outcome',
    description:
      'delivery_status is pending, delivered or failed; attempts, last_error, last_attempt_at, delivered_at.',
  })
  @ApiQuery({ name: 'page', required: false, type: Number })
  @ApiQuery({ name: 'page_size', required: false, type: Number, description: `At most ${MAX_PAGE_SIZE}` })
  async list(@Query() query: Record<string, unknown>): Promise<Page<Alert>> {
    for (const name of Object.keys(query)) {
      if (!PARAMS.includes(name)) throw invalid(name, 'is not a parameter of this list; use page, page_size');
    }
    const p = parsePaging(query);
    const { items, total } = await this.alerts.list(p.pageSize, p.offset);
    return pageOf(items, total, p);
  }
}
