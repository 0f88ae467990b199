import { Body, Controller, Delete, Get, HttpCode, Inject, Param, Post, Put, Query } from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiBody,
  ApiConflictResponse,
  ApiCreatedResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiParam,
  ApiQuery,
  ApiTags,
  ApiUnprocessableEntityResponse,
} from '@nestjs/swagger';
import { type Page, type Route, ROUTE_LIMITS } from '@keypin/shared';
import { CurrentCaller } from '../admin/common/caller.decorator';
import { pageOf, parsePaging } from '../admin/common/paging';
import { onlyParams, parseId } from '../admin/common/params';
import type { Caller } from '../admin/common/roles';
import { CreateRouteDto, RoutePageView, RouteView, UpdateRouteDto } from './dto/route.dto';
import { RouteAdminService } from './route-admin.service';

const LIST_PARAMS = new Set(['page', 'page_size']);
const INVALID = 'validation_failed, naming the field (an unset ${env:NAME} names the variable too)';

/**
 * `/admin/api/routes` (docs/contract.md 10). Reads are open to auditors,
 * changes need an admin (the guard decides by method). Bodies go to the
 * service as they came: the shared `validateRoute` checks them.
 */
@ApiTags('routes')
@ApiBearerAuth()
@Controller('admin/api')
export class RoutesController {
  constructor(@Inject(RouteAdminService) private readonly routes: RouteAdminService) {}

  @Get('routes')
  @ApiOperation({ summary: 'List routes, by id (header values are write-only: only their names are shown)' })
  @ApiQuery({ name: 'page', required: false, type: Number })
  @ApiQuery({ name: 'page_size', required: false, type: Number })
  @ApiOkResponse({ type: RoutePageView })
  async list(@Query() query: Record<string, unknown>): Promise<Page<Route>> {
    onlyParams(query, LIST_PARAMS);
    const p = parsePaging(query);
    const { items, total } = await this.routes.list(p);
    return pageOf(items, total, p);
  }

  @Get('routes/:id')
  @ApiOperation({ summary: 'One route' })
  @ApiParam({ name: 'id', type: Number })
  @ApiOkResponse({ type: RouteView })
  @ApiNotFoundResponse({ description: 'not_found' })
  get(@Param('id') rawId: string): Promise<Route> {
    return this.routes.get(parseId(rawId));
  }

  @Post('routes')
  @HttpCode(201)
  @ApiOperation({
    summary: `Add a route (at most ${ROUTE_LIMITS.routes}); every instance routes by it within 1 s`,
    description:
      'Header values are sealed before they are stored and never answered. Every ${env:NAME} a value ' +
      'names must be set in the gateway’s environment.',
  })
  @ApiBody({ type: CreateRouteDto })
  @ApiCreatedResponse({ type: RouteView })
  @ApiConflictResponse({ description: 'conflict: a route with this prefix exists' })
  @ApiUnprocessableEntityResponse({ description: INVALID })
  create(@Body() body: unknown, @CurrentCaller() caller: Caller): Promise<Route> {
    return this.routes.create(caller, body);
  }

  @Put('routes/:id')
  @ApiOperation({
    summary: 'Change a route: fields left out keep their value',
    description:
      'upstream_headers given replaces the whole set; require_header: null removes the proxy token.',
  })
  @ApiParam({ name: 'id', type: Number })
  @ApiBody({ type: UpdateRouteDto })
  @ApiOkResponse({ type: RouteView })
  @ApiNotFoundResponse({ description: 'not_found' })
  @ApiConflictResponse({ description: 'conflict: another route has this prefix' })
  @ApiUnprocessableEntityResponse({ description: INVALID })
  update(@Param('id') rawId: string, @Body() body: unknown, @CurrentCaller() caller: Caller): Promise<Route> {
    return this.routes.update(caller, parseId(rawId), body);
  }

  @Delete('routes/:id')
  @ApiOperation({ summary: 'Delete a route; answers it as it was' })
  @ApiParam({ name: 'id', type: Number })
  @ApiOkResponse({ type: RouteView })
  @ApiNotFoundResponse({ description: 'not_found' })
  remove(@Param('id') rawId: string, @CurrentCaller() caller: Caller): Promise<Route> {
    return this.routes.remove(caller, parseId(rawId));
  }
}
