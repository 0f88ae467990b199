import { ApiProperty } from '@nestjs/swagger';
import {
  type ChangePasswordRequest,
  type CreateUserRequest,
  MIN_PASSWORD_LENGTH,
  type Role,
  ROLES,
  USERNAME_PATTERN,
} from '@keypin/shared';
import { IsIn, IsString, Length, Matches } from 'class-validator';

export class CreateUserDto implements CreateUserRequest {
  @ApiProperty({ example: 'alice' })
  @IsString()
  @Matches(USERNAME_PATTERN, { message: 'must be 1-64 letters, digits or _ . @ -' })
  username!: string;

  @ApiProperty({ minLength: MIN_PASSWORD_LENGTH })
  @IsString()
  @Length(MIN_PASSWORD_LENGTH, 1024, { message: `must be at least ${MIN_PASSWORD_LENGTH} characters` })
  password!: string;

  @ApiProperty({ enum: ROLES })
  @IsIn(ROLES as Role[], { message: `must be one of ${ROLES.join(', ')}` })
  role!: Role;
}

export class ChangePasswordDto implements ChangePasswordRequest {
  @ApiProperty({ minLength: MIN_PASSWORD_LENGTH })
  @IsString()
  @Length(MIN_PASSWORD_LENGTH, 1024, { message: `must be at least ${MIN_PASSWORD_LENGTH} characters` })
  password!: string;
}
