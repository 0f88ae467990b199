import { Controller, Inject } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { AdminContext } from '../admin-context';

@ApiTags('alerts')
@ApiBearerAuth()
@Controller('admin/api')
export class AlertsController {
  constructor(@Inject(AdminContext) private readonly ctx: AdminContext) {}
}
