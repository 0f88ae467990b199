import { Body, Controller, Get, HttpCode, Inject, Param, Post, Put, Query } from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiCreatedResponse,
  ApiOkResponse,
  ApiOperation,
  ApiParam,
  ApiQuery,
  ApiTags,
} from '@nestjs/swagger';
import {
  type Binding,
  BINDING_STATUSES,
  type BindingUsage,
  MAX_SEARCH_LENGTH,
  type Page,
  RULE_TYPES,
} from '@keypin/shared';
import { CurrentCaller } from '../admin/common/caller.decorator';
import { pageOf, parsePaging } from '../admin/common/paging';
import type { Caller } from '../admin/common/roles';
import { onlyParams, parseId, queryOne, queryOneOf } from '../admin/common/params';
import { invalid } from '../admin/common/validation';
import type { BindingFilter } from './binding-admin.repository';
import { BindingAdminService } from './binding-admin.service';
import {
  BindingIdDto,
  BindingPageView,
  BindingUsageView,
  BindingView,
  SetBindingPolicyDto,
  CreateBindingDto,
  UpdateBindingIpDto,
} from './dto/binding.dto';

const LIST_PARAMS = new Set(['search', 'status', 'rule_type', 'page', 'page_size']);

@ApiTags('bindings')
@ApiBearerAuth()
@Controller('admin/api')
export class BindingsController {
  constructor(@Inject(BindingAdminService) private readonly bindings: BindingAdminService) {}

  @Get('bindings')
  @ApiOperation({
    summary: 'List bindings, newest first',
    description:
      '`search` matches a masked key (substring, case-insensitive), an IP inside a binding’s networks or ' +
      'equal to its first or last IP, a CIDR overlapping them, or a full raw key (hashed on the server).',
  })
  @ApiQuery({ name: 'search', required: false })
  @ApiQuery({ name: 'status', required: false, enum: BINDING_STATUSES })
  @ApiQuery({ name: 'rule_type', required: false, enum: RULE_TYPES })
  @ApiQuery({ name: 'page', required: false, type: Number })
  @ApiQuery({ name: 'page_size', required: false, type: Number })
  @ApiOkResponse({ type: BindingPageView })
  async list(@Query() query: Record<string, unknown>): Promise<Page<Binding>> {
    onlyParams(query, LIST_PARAMS);
    const p = parsePaging(query);
    const search = queryOne(query, 'search');
    if (search !== null && search.length > MAX_SEARCH_LENGTH) {
      throw invalid('search', `must be at most ${MAX_SEARCH_LENGTH} characters`);
    }
    const filter: BindingFilter = {
      search: search === null ? null : this.bindings.search(search),
      status: queryOneOf(query, 'status', BINDING_STATUSES),
      ruleType: queryOneOf(query, 'rule_type', RULE_TYPES),
    };
    const { items, total } = await this.bindings.list(filter, p);
    return pageOf(items, total, p);
  }

  @Get('bindings/:id')
  @ApiOperation({ summary: 'One binding' })
  @ApiParam({ name: 'id', type: Number })
  @ApiOkResponse({ type: BindingView })
  get(@Param('id') rawId: string): Promise<Binding> {
    return this.bindings.get(parseId(rawId));
  }

  @Post('bindings')
  @HttpCode(201)
  @ApiOperation({ summary: 'Pre-bind a key before its first use; 409 already_bound if it is bound' })
  @ApiCreatedResponse({ type: BindingView })
  create(@Body() body: CreateBindingDto, @CurrentCaller() caller: Caller): Promise<Binding> {
    return this.bindings.create(caller, body);
  }

  @Post('bindings/unbind')
  @HttpCode(200)
  @ApiOperation({ summary: 'Remove a binding (kept in the archive); the key binds afresh on its next use' })
  @ApiOkResponse({ type: BindingView })
  unbind(@Body() body: BindingIdDto, @CurrentCaller() caller: Caller): Promise<Binding> {
    return this.bindings.unbind(caller, body.id);
  }

  @Put('bindings/ip')
  @ApiOperation({ summary: 'Change the rule and networks; every instance enforces it within 1 s' })
  @ApiOkResponse({ type: BindingView })
  updateIp(@Body() body: UpdateBindingIpDto, @CurrentCaller() caller: Caller): Promise<Binding> {
    return this.bindings.updateNetworks(caller, body.id, body.rule_type, body.allowed_ips);
  }

  @Put('bindings/policy')
  @ApiOperation({
    summary:
      "Set the key's own policy (rate, quotas, concurrency, models, max_tokens); null returns it to the default",
  })
  @ApiOkResponse({ type: BindingView })
  setPolicy(@Body() body: SetBindingPolicyDto, @CurrentCaller() caller: Caller): Promise<Binding> {
    return this.bindings.setPolicy(caller, body.id, body.policy);
  }

  @Get('bindings/:id/usage')
  @ApiOperation({ summary: "The key's requests today and this month (UTC) and its quotas" })
  @ApiParam({ name: 'id', type: Number })
  @ApiOkResponse({ type: BindingUsageView })
  usage(@Param('id') rawId: string): Promise<BindingUsage> {
    return this.bindings.usage(parseId(rawId));
  }

  @Post('bindings/ban')
  @HttpCode(200)
  @ApiOperation({ summary: 'Ban the key: every request with it is refused with 403 key_banned' })
  @ApiOkResponse({ type: BindingView })
  ban(@Body() body: BindingIdDto, @CurrentCaller() caller: Caller): Promise<Binding> {
    return this.bindings.setStatus(caller, body.id, 'banned');
  }

  @Post('bindings/unban')
  @HttpCode(200)
  @ApiOperation({ summary: 'Lift a ban' })
  @ApiOkResponse({ type: BindingView })
  unban(@Body() body: BindingIdDto, @CurrentCaller() caller: Caller): Promise<Binding> {
    return this.bindings.setStatus(caller, body.id, 'active');
  }
}
