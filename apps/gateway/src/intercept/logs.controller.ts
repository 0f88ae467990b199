import { applyDecorators, Controller, Get, Inject, Query, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiProduces, ApiQuery, ApiTags } from '@nestjs/swagger';
import { CSV_HEADER, INTERCEPT_REASONS, type Intercept, MAX_PAGE_SIZE, type Page } from '@keypin/shared';
import type { Readable } from 'node:stream';
import type { FastifyReply } from 'fastify';
import { KeypinError } from '../infra/http/all-exceptions.filter';
import { pageOf, parsePaging } from '../admin/common/paging';
import { InterceptPageView } from './dto/intercept.dto';
import { parseInterceptFilter } from './intercept-filter';
import { InterceptLogService } from './intercept-log.service';

/** The filters shared by the list and the export, for the OpenAPI document. */
function ApiInterceptFilters() {
  return applyDecorators(
    ApiQuery({ name: 'binding_id', required: false, type: Number, description: 'Only this binding' }),
    ApiQuery({
      name: 'search',
      required: false,
      description: 'Case-insensitive part of the masked key ("..." stands for "\u2026")',
    }),
    ApiQuery({
      name: 'ip',
      required: false,
      description: 'Attempted IP equal to this address, or inside this CIDR',
    }),
    ApiQuery({ name: 'reason', required: false, enum: INTERCEPT_REASONS }),
    ApiQuery({
      name: 'from',
      required: false,
      description: 'ISO-8601, inclusive: 2025-01-31 (midnight UTC) or 2025-01-31T10:00:00Z',
    }),
    ApiQuery({
      name: 'to',
      required: false,
      description: 'ISO-8601, inclusive; a date alone includes that whole day (UTC)',
    }),
  );
}

/** `keypin-intercepts-20250131T100000Z.csv` */
function exportFileName(now: Date): string {
  return `keypin-intercepts-${now.toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '')}.csv`;
}

@ApiTags('logs')
@ApiBearerAuth()
@Controller('admin/api')
export class LogsController {
  constructor(@Inject(InterceptLogService) private readonly logs: InterceptLogService) {}

  @Get('logs')
  @ApiOperation({
    summary: 'Intercepted requests, newest first',
    description:
      'Each item is a record; its count is the number of refused requests it stands for ' +
      '(one key, one IP, one reason, within one second).',
  })
  @ApiOkResponse({ type: InterceptPageView })
  @ApiInterceptFilters()
  @ApiQuery({ name: 'page', required: false, type: Number })
  @ApiQuery({ name: 'page_size', required: false, type: Number, description: `At most ${MAX_PAGE_SIZE}` })
  async list(@Query() query: Record<string, unknown>): Promise<Page<Intercept>> {
    const filter = parseInterceptFilter(query);
    const p = parsePaging(query);
    const { items, total } = await this.logs.list(filter, p);
    return pageOf(items, total, p);
  }

  @Get('logs/export')
  @ApiOperation({
    summary: 'The filtered intercept log as CSV (streamed, newest first)',
    description:
      `Columns: ${CSV_HEADER.join(',')} (count: the refused requests the record stands for). ` +
      'RFC 4180 with CRLF line ends; fields that could start a spreadsheet formula get a leading apostrophe.',
  })
  @ApiProduces('text/csv')
  @ApiInterceptFilters()
  async export(@Query() query: Record<string, unknown>, @Res() reply: FastifyReply): Promise<void> {
    const filter = parseInterceptFilter(query);
    let csv: Readable;
    try {
      csv = await this.logs.exportCsv(filter);
    } catch (err) {
      if (err instanceof KeypinError && err.code === 'too_many_attempts')
        void reply.header('retry-after', '10');
      throw err;
    }
    void reply
      .status(200)
      .type('text/csv; charset=utf-8')
      .header('content-disposition', `attachment; filename="${exportFileName(new Date())}"`)
      .header('cache-control', 'no-store')
      .header('x-content-type-options', 'nosniff')
      .send(csv);
  }
}
