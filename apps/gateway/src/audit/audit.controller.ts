import { Controller, Get, Inject, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { AuditEntry, Page } from '@keypin/shared';
import { pageOf, parsePaging } from '../admin/common/paging';
import { AuditRepository } from './audit.repository';

@ApiTags('audit')
@ApiBearerAuth()
@Controller('admin/api/audit')
export class AuditController {
  constructor(@Inject(AuditRepository) private readonly audit: AuditRepository) {}

  @Get()
  @ApiOperation({ summary: 'Who changed what and when, newest first' })
  async list(@Query() query: Record<string, unknown>): Promise<Page<AuditEntry>> {
    const p = parsePaging(query);
    const { items, total } = await this.audit.list(p);
    return pageOf(items, total, p);
  }
}
