import { Body, Controller, Delete, Get, HttpCode, Inject, Param, Post, Put, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { AdminUser, Page } from '@keypin/shared';
import { CurrentCaller } from '../admin/common/caller.decorator';
import { pageOf, parsePaging } from '../admin/common/paging';
import { AdminOnly, type Caller } from '../admin/common/roles';
import { parseId } from '../admin/common/params';
import { ChangePasswordDto, CreateUserDto } from './dto/user.dto';
import { UsersService } from './users.service';

@ApiTags('users')
@ApiBearerAuth()
@AdminOnly()
@Controller('admin/api/users')
export class UsersController {
  constructor(@Inject(UsersService) private readonly users: UsersService) {}

  @Get()
  @ApiOperation({ summary: 'Admin accounts (admin role only)' })
  async list(@Query() query: Record<string, unknown>): Promise<Page<AdminUser>> {
    const p = parsePaging(query);
    const { items, total } = await this.users.list(p);
    return pageOf(items, total, p);
  }

  @Post()
  @HttpCode(201)
  @ApiOperation({ summary: 'Create an admin or auditor account' })
  create(@Body() body: CreateUserDto, @CurrentCaller() caller: Caller): Promise<AdminUser> {
    return this.users.create(caller, body.username, body.password, body.role);
  }

  @Delete(':id')
  @ApiOperation({ summary: 'Delete an account (not your own, not the last admin)' })
  remove(@Param('id') rawId: string, @CurrentCaller() caller: Caller): Promise<AdminUser> {
    return this.users.remove(caller, parseId(rawId));
  }

  @Put(':id/password')
  @ApiOperation({ summary: "Set a user's password; ends that user's sessions" })
  password(
    @Param('id') rawId: string,
    @Body() body: ChangePasswordDto,
    @CurrentCaller() caller: Caller,
  ): Promise<AdminUser> {
    return this.users.setPassword(caller, parseId(rawId), body.password);
  }
}
