import { Controller, Inject } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { AdminContext } from '../admin-context';

@ApiTags('settings')
@ApiBearerAuth()
@Controller('admin/api')
export class SettingsController {
  constructor(@Inject(AdminContext) private readonly ctx: AdminContext) {}
}
