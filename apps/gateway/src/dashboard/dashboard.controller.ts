import { Controller, Get, Inject } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Dashboard } from '@keypin/shared';
import { DashboardService } from './dashboard.service';

@ApiTags('dashboard')
@ApiBearerAuth()
@Controller('admin/api')
export class DashboardController {
  constructor(@Inject(DashboardService) private readonly dashboard: DashboardService) {}

  @Get('dashboard')
  @ApiOperation({
    summary: "Today's figures (UTC), binding counts, a 7-day series and the latest intercepts",
    description:
      'today and series come from per-day counters flushed every few seconds; top_intercepted ranks ' +
      'bindings by their running count of refused requests (since the binding was created); ' +
      'recent_intercepts are the latest 10 records, each with the number of requests it stands for (count).',
  })
  get(): Promise<Dashboard> {
    return this.dashboard.get();
  }
}
