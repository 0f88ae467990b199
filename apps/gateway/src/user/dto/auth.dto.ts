import { ApiProperty } from '@nestjs/swagger';
import type { LoginRequest } from '@keypin/shared';
import { IsString, Length } from 'class-validator';

export class LoginDto implements LoginRequest {
  @ApiProperty({ example: 'admin' })
  @Length(1, 64)
  @IsString()
  username!: string;

  @ApiProperty({ example: 'correct horse battery staple' })
  @Length(1, 1024)
  @IsString()
  password!: string;
}
