import { Controller, Inject } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { AdminContext } from '../admin-context';

@ApiTags('bindings')
@ApiBearerAuth()
@Controller('admin/api')
export class BindingsController {
  constructor(@Inject(AdminContext) private readonly ctx: AdminContext) {}
}
