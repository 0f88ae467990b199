import { ApiProperty } from '@nestjs/swagger';
import {
  type Alert,
  type AlertActionResult,
  type AlertDeliveryStatus,
  type AlertStatus,
  ALERT_STATUSES,
  type AllowAlertNetworkRequest,
  type Page,
} from '@keypin/shared';
import { IsString, MaxLength } from 'class-validator';
import { BindingView } from '../../binding/dto/binding.dto';

/** `POST /alerts/:id/allow-network`. */
export class AllowAlertNetworkDto implements AllowAlertNetworkRequest {
  @ApiProperty({
    description: "One of the alert's attempt_networks (canonical CIDR; an address alone is its /32 or /128)",
    example: '198.51.100.9/32',
    maxLength: 64,
  })
  @MaxLength(64, { message: 'must be at most 64 characters' })
  @IsString({ message: 'must be a string: one of the alert’s attempt_networks' })
  network!: string;
}

/** The Alert shape, for the OpenAPI document. */
export class AlertView implements Alert {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty() binding_id!: number;
  @ApiProperty({ example: 'abcd…wxyz' }) token_display!: string;
  @ApiProperty({ type: [String], description: "The binding's networks when the alert was raised" })
  allowed_ips!: string[];
  @ApiProperty({ type: [String], example: ['198.51.100.9'] }) attempt_ips!: string[];
  @ApiProperty({
    type: [String],
    example: ['198.51.100.9/32'],
    description:
      'The networks the attempts came from: each attempted IP under the binding prefixes in force when the alert was raised',
  })
  attempt_networks!: string[];
  @ApiProperty({ enum: ALERT_STATUSES }) status!: AlertStatus;
  @ApiProperty({ type: String, nullable: true, description: 'Who acted (null while open, or AUTO_BAN)' })
  acted_by!: string | null;
  @ApiProperty({ type: String, nullable: true, format: 'date-time' }) acted_at!: string | null;
  @ApiProperty({ type: String, nullable: true, description: 'The network allowed (status allowed)' })
  allowed_network!: string | null;
  @ApiProperty({ description: 'Refused requests in the window' }) count!: number;
  @ApiProperty() window_seconds!: number;
  @ApiProperty({ format: 'date-time' }) first_at!: string;
  @ApiProperty({ format: 'date-time' }) last_at!: string;
  @ApiProperty({ format: 'date-time' }) occurred_at!: string;
  @ApiProperty() auto_banned!: boolean;
  @ApiProperty({ enum: ['pending', 'delivered', 'failed'] }) delivery_status!: AlertDeliveryStatus;
  @ApiProperty() attempts!: number;
  @ApiProperty({ type: String, nullable: true }) last_error!: string | null;
  @ApiProperty({ type: String, nullable: true, format: 'date-time' }) last_attempt_at!: string | null;
  @ApiProperty({ type: String, nullable: true, format: 'date-time' }) delivered_at!: string | null;
}

export class AlertPageView implements Page<Alert> {
  @ApiProperty({ type: [AlertView] }) items!: AlertView[];
  @ApiProperty() total!: number;
  @ApiProperty() page!: number;
  @ApiProperty() page_size!: number;
}

export class AlertActionView implements AlertActionResult {
  @ApiProperty({ type: AlertView }) alert!: AlertView;
  @ApiProperty({
    type: BindingView,
    nullable: true,
    description: 'The binding after the action; null for dismiss',
  })
  binding!: BindingView | null;
}
