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
  type BindingUsage,
  type KeyPolicy,
  type SetBindingPolicyRequest,
} from '@keypin/shared';
import {
  Allow,
  IsArray,
  IsIn,
  IsInt,
  IsOptional,
  IsString,
  Length,
  Max,
  MaxLength,
  Min,
} from 'class-validator';
import { POLICY_SCHEMA } from '../../policy/policy-schema';
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

/** `PUT /bindings/policy`: the policy is checked by the shared `validatePolicy` (422 naming the field). */
export class SetBindingPolicyDto extends BindingIdDto implements SetBindingPolicyRequest {
  @ApiProperty({
    ...POLICY_SCHEMA,
    description: "The key's own policy; null returns it to the default policy.",
  })
  @Allow()
  policy!: KeyPolicy | null;
}

export class BindingUsageView implements BindingUsage {
  @ApiProperty({ description: 'Requests forwarded today (UTC)' }) today!: number;
  @ApiProperty({ description: 'Requests forwarded this calendar month (UTC)' }) month!: number;
  @ApiProperty({ type: Number, nullable: true }) limit_day!: number | null;
  @ApiProperty({ type: Number, nullable: true }) limit_month!: number | null;
  @ApiProperty({ ...POLICY_SCHEMA, description: 'The policy that applies (own or default)' })
  effective_policy!: KeyPolicy | null;
  @ApiProperty({ enum: ['binding', 'default', 'none'] }) policy_source!: 'binding' | 'default' | 'none';
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
  @ApiProperty({ ...POLICY_SCHEMA, description: "The key's own policy; null = the default applies" })
  policy!: KeyPolicy | null;
  @ApiProperty({ description: 'Requests forwarded today (UTC), written in batches' }) requests_today!: number;
}

export class BindingPageView implements Page<Binding> {
  @ApiProperty({ type: [BindingView] }) items!: BindingView[];
  @ApiProperty() total!: number;
  @ApiProperty() page!: number;
  @ApiProperty() page_size!: number;
}
