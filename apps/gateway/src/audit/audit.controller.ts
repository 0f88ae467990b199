import { Controller, Get, Inject, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { AuditEntry, Page } from '@keypin/shared';
import { AdminContext } from '../admin/admin-context';
import { pageOf, parsePaging } from '../admin/common/paging';

@ApiTags('audit')
@ApiBearerAuth()
@Controller('admin/api/audit')
export class AuditController {
  constructor(@Inject(AdminContext) private readonly ctx: AdminContext) {}

  @Get()
  @ApiOperation({ summary: 'Who changed what and when, newest first' })
  async list(@Query() query: Record<string, unknown>): Promise<Page<AuditEntry>> {
    const p = parsePaging(query);
    const { items, total } = await this.ctx.audit.list(p);
    return pageOf(items, total, p);
  }
}
