import { Controller, Get, Inject } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { IntegrityReport } from '@keypin/shared';
import { IntegrityReportView } from './dto/integrity.dto';
import { IntegrityService } from './integrity.service';

@ApiTags('integrity')
@ApiBearerAuth()
@Controller('admin/api')
export class IntegrityController {
  constructor(@Inject(IntegrityService) private readonly integrity: IntegrityService) {}

  @Get('integrity')
  @ApiOperation({
    summary: 'Recompute the hash chains of the intercept log and the audit trail',
    description:
      'Each chain is verified from its latest checkpoint to its head in one snapshot: every record must ' +
      'follow the one before (seq + 1, prev_hash) and hash to its stored hash. first_bad_seq names the ' +
      'first record that fails (changed, removed or inserted). Reads every record: on a large log this ' +
      'takes a while (docs/integrity.md gives figures); requests arriving meanwhile share the run.',
  })
  @ApiOkResponse({ type: IntegrityReportView })
  get(): Promise<IntegrityReport> {
    return this.integrity.verify();
  }
}
