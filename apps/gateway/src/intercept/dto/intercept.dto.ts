import { ApiProperty } from '@nestjs/swagger';
import { type Intercept, INTERCEPT_REASONS, type InterceptReason, type Page } from '@keypin/shared';

/** The Intercept shape, for the OpenAPI document. */
export class InterceptView implements Intercept {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({
    type: Number,
    nullable: true,
    description: 'null: refused by the network policy before the key had a binding',
  })
  binding_id!: number | null;
  @ApiProperty({ description: 'Masked key: at most the first and last 4 characters', example: 'abcd…wxyz' })
  token_display!: string;
  @ApiProperty({ example: '198.51.100.9' }) attempt_ip!: string;
  @ApiProperty({
    type: [String],
    description: "The binding's networks at the moment of the refusal",
    example: ['203.0.113.7/32'],
  })
  allowed_ips!: string[];
  @ApiProperty({ enum: INTERCEPT_REASONS }) reason!: InterceptReason;
  @ApiProperty({ example: 'POST' }) method!: string;
  @ApiProperty({ description: 'Without the query string', example: '/v1/chat/completions' }) path!: string;
  @ApiProperty({ type: String, nullable: true }) user_agent!: string | null;
  @ApiProperty() alerted!: boolean;
  @ApiProperty({ format: 'date-time', description: 'The first request the record stands for' })
  intercepted_at!: string;
  @ApiProperty({
    minimum: 1,
    example: 1,
    description:
      'Refused requests this record stands for: those of one key from one IP for one reason within ' +
      'one second may share a record (its method, path and user agent are the first request’s); 1 otherwise',
  })
  count!: number;
  @ApiProperty({
    type: Number,
    nullable: true,
    minimum: 1,
    description:
      "The record's place in the intercept hash chain, gapless from 1 (docs/integrity.md); " +
      'null until the record is sealed, a few seconds after it was written',
  })
  seq!: number | null;
  @ApiProperty({
    type: String,
    nullable: true,
    pattern: '^[0-9a-f]{64}$',
    description: 'hex(SHA-256(prev_hash + "\\n" + canonical JSON of the record)); null until sealed',
  })
  hash!: string | null;
  @ApiProperty({
    type: String,
    nullable: true,
    pattern: '^[0-9a-f]{64}$',
    description: "The previous record's hash (64 zeros before seq 1); null until sealed",
  })
  prev_hash!: string | null;
  @ApiProperty({
    description: 'False in monitor mode (ENFORCE_MODE=monitor): recorded, but the request was forwarded',
  })
  enforced!: boolean;
}

export class InterceptPageView implements Page<Intercept> {
  @ApiProperty({ type: [InterceptView] }) items!: InterceptView[];
  @ApiProperty({ description: 'Matching records (not requests)' }) total!: number;
  @ApiProperty() page!: number;
  @ApiProperty() page_size!: number;
}
