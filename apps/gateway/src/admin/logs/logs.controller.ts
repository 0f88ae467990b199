import { Controller, Inject } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { AdminContext } from '../admin-context';

@ApiTags('logs')
@ApiBearerAuth()
@Controller('admin/api')
export class LogsController {
  constructor(@Inject(AdminContext) private readonly ctx: AdminContext) {}
}
