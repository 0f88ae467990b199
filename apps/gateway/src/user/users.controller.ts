import { Body, Controller, Delete, Get, HttpCode, Inject, Param, Post, Put, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { AdminUser, Page } from '@keypin/shared';
import { KeypinError } from '../infra/http/all-exceptions.filter';
import { AdminContext } from '../admin/admin-context';
import { hashPassword } from './password';
import { CurrentCaller } from '../admin/common/caller.decorator';
import { pageOf, parsePaging } from '../admin/common/paging';
import { AdminOnly, type Caller } from '../admin/common/roles';
import { invalid } from '../admin/common/validation';
import { ChangePasswordDto, CreateUserDto } from './dto/user.dto';
import { publicUser } from './users.repository';

function parseId(raw: string): number {
  if (!/^\d{1,15}$/.test(raw)) throw invalid('id', 'must be a positive integer');
  return Number(raw);
}

@ApiTags('users')
@ApiBearerAuth()
@AdminOnly()
@Controller('admin/api/users')
export class UsersController {
  constructor(@Inject(AdminContext) private readonly ctx: AdminContext) {}

  @Get()
  @ApiOperation({ summary: 'Admin accounts (admin role only)' })
  async list(@Query() query: Record<string, unknown>): Promise<Page<AdminUser>> {
    const p = parsePaging(query);
    const { items, total } = await this.ctx.users.list(p.pageSize, p.offset);
    return pageOf(items.map(publicUser), total, p);
  }

  @Post()
  @HttpCode(201)
  @ApiOperation({ summary: 'Create an admin or auditor account' })
  async create(@Body() body: CreateUserDto, @CurrentCaller() caller: Caller): Promise<AdminUser> {
    const user = await this.ctx.users.create(body.username, await hashPassword(body.password), body.role);
    if (!user) throw new KeypinError('conflict', `The username "${body.username}" is taken.`);
    const out = publicUser(user);
    await this.ctx.audit.record(caller, 'user.create', `user:${user.id}`, null, out);
    return out;
  }

  @Delete(':id')
  @ApiOperation({ summary: 'Delete an account (not your own, not the last admin)' })
  async remove(@Param('id') rawId: string, @CurrentCaller() caller: Caller): Promise<AdminUser> {
    const id = parseId(rawId);
    if (id === caller.userId) throw new KeypinError('conflict', 'You cannot delete your own account.');
    const target = await this.ctx.users.findById(id);
    if (!target) throw new KeypinError('not_found', `No user ${id}.`);
    if (target.role === 'admin' && (await this.ctx.users.countAdmins()) <= 1) {
      throw new KeypinError('conflict', 'The last admin cannot be deleted.');
    }
    const deleted = await this.ctx.users.delete(id);
    if (!deleted) throw new KeypinError('not_found', `No user ${id}.`);
    const out = publicUser(deleted);
    await this.ctx.audit.record(caller, 'user.delete', `user:${id}`, out, null);
    return out;
  }

  @Put(':id/password')
  @ApiOperation({ summary: "Set a user's password; ends that user's sessions" })
  async password(
    @Param('id') rawId: string,
    @Body() body: ChangePasswordDto,
    @CurrentCaller() caller: Caller,
  ): Promise<AdminUser> {
    const id = parseId(rawId);
    const user = await this.ctx.users.setPassword(id, await hashPassword(body.password));
    if (!user) throw new KeypinError('not_found', `No user ${id}.`);
    const out = publicUser(user);
    await this.ctx.audit.record(caller, 'user.password', `user:${id}`, null, { password: 'changed' });
    return out;
  }
}
