import { Controller, Inject } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { AdminContext } from '../admin-context';

@ApiTags('dashboard')
@ApiBearerAuth()
@Controller('admin/api')
export class DashboardController {
  constructor(@Inject(AdminContext) private readonly ctx: AdminContext) {}
}
