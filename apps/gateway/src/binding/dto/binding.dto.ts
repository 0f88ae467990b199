import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import {
  type Binding,
  type BindingIdRequest,
  type BindingStatus,
  BINDING_STATUSES,
  type CreateBindingRequest,
  MAX_NETWORKS,
  type Page,
  type RuleType,
  RULE_TYPES,
  type UpdateBindingIpRequest,
} from '@keypin/shared';
import { IsArray, IsIn, IsInt, IsOptional, IsString, Length, Max, MaxLength, Min } from 'class-validator';
import { MAX_KEY_LENGTH } from '../../proxy/api-key';

export const MAX_NOTE_LENGTH = 1000;

const RULE_MESSAGE = `must be one of ${RULE_TYPES.join(', ')}`;
const ID_MESSAGE = 'must be a positive integer';

// class-validator runs a property's decorators bottom-up: type checks go last (they run first).

export class BindingIdDto implements BindingIdRequest {
  @ApiProperty({ example: 42, minimum: 1 })
  @Max(Number.MAX_SAFE_INTEGER, { message: ID_MESSAGE })
  @Min(1, { message: ID_MESSAGE })
  @IsInt({ message: ID_MESSAGE })
  id!: number;
}

export class CreateBindingDto implements CreateBindingRequest {
  @ApiProperty({
    description: 'The raw API key (hashed on the server, never stored or shown)',
    example: 'sk-abc123',
    maxLength: MAX_KEY_LENGTH,
  })
  @Length(1, MAX_KEY_LENGTH, { message: `must be 1 to ${MAX_KEY_LENGTH} characters` })
  @IsString()
  key!: string;

  @ApiProperty({ enum: RULE_TYPES })
  @IsIn(RULE_TYPES as RuleType[], { message: RULE_MESSAGE })
  rule_type!: RuleType;

  @ApiProperty({
    type: [String],
    description: `single: exactly one IP or CIDR; multiple: 1 to ${MAX_NETWORKS}; all: none. Canonical entries only.`,
    example: ['203.0.113.0/24'],
  })
  @IsArray()
  allowed_ips!: string[];

  @ApiPropertyOptional({ type: String, nullable: true, maxLength: MAX_NOTE_LENGTH })
  @MaxLength(MAX_NOTE_LENGTH, { message: `must be at most ${MAX_NOTE_LENGTH} characters` })
  @IsString()
  @IsOptional()
  note?: string | null;
}

export class UpdateBindingIpDto extends BindingIdDto implements UpdateBindingIpRequest {
  @ApiProperty({ enum: RULE_TYPES })
  @IsIn(RULE_TYPES as RuleType[], { message: RULE_MESSAGE })
  rule_type!: RuleType;

  @ApiProperty({
    type: [String],
    description: `single: exactly one IP or CIDR; multiple: 1 to ${MAX_NETWORKS}; all: none. Canonical entries only.`,
    example: ['203.0.113.0/24', '198.51.100.7/32'],
  })
  @IsArray()
  allowed_ips!: string[];
}

/** The Binding shape, for the OpenAPI document. */
export class BindingView implements Binding {
  @ApiProperty() id!: number;
  @ApiProperty({ description: 'Masked key: at most the first and last 4 characters', example: 'abcd…wxyz' })
  token_display!: string;
  @ApiProperty({ enum: RULE_TYPES }) rule_type!: RuleType;
  @ApiProperty({ type: [String], example: ['203.0.113.7/32'] }) allowed_ips!: string[];
  @ApiProperty({ enum: BINDING_STATUSES }) status!: BindingStatus;
  @ApiProperty({ type: String, nullable: true }) first_ip!: string | null;
  @ApiProperty({ type: String, nullable: true, format: 'date-time' }) first_used_at!: string | null;
  @ApiProperty({ type: String, nullable: true }) last_ip!: string | null;
  @ApiProperty({ type: String, nullable: true, format: 'date-time' }) last_used_at!: string | null;
  @ApiProperty() request_count!: number;
  @ApiProperty() intercept_count!: number;
  @ApiProperty({ type: String, nullable: true }) note!: string | null;
  @ApiProperty({ format: 'date-time' }) created_at!: string;
  @ApiProperty({ format: 'date-time' }) updated_at!: string;
}

export class BindingPageView implements Page<Binding> {
  @ApiProperty({ type: [BindingView] }) items!: BindingView[];
  @ApiProperty() total!: number;
  @ApiProperty() page!: number;
  @ApiProperty() page_size!: number;
}
