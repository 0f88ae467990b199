import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { type Page, type Relay, RELAYS, type Route, ROUTE_LIMITS, type RouteInput } from '@keypin/shared';

/*
 * The OpenAPI description of the routes resource. Bodies are checked by the
 * shared `validateRoute` (the same rules as `ROUTES` and the console's
 * form, 422 naming the field), not by class-validator: these classes only
 * describe the shapes.
 */

const { min, max } = ROUTE_LIMITS.timeoutSeconds;

const UPSTREAM_HEADERS_SCHEMA = {
  type: 'object' as const,
  additionalProperties: { type: 'string' as const, minLength: 1, maxLength: ROUTE_LIMITS.headerValueLength },
  maxProperties: ROUTE_LIMITS.headers,
  description:
    'Header name → value, set on the way upstream (replacing the client’s headers of those names). A value ' +
    'may name an environment variable of the gateway with ${env:NAME}. Write-only: never answered. ' +
    'Hop-by-hop headers, host, content-length and the client-address headers cannot be set.',
  example: { authorization: 'Bearer ${env:OPENAI_API_KEY}' },
};

const REQUIRE_HEADER_SCHEMA = {
  type: 'object' as const,
  nullable: true,
  additionalProperties: false,
  required: ['name', 'value'],
  properties: {
    name: { type: 'string' as const, example: 'x-proxy-token' },
    value: {
      type: 'string' as const,
      minLength: 1,
      maxLength: ROUTE_LIMITS.headerValueLength,
      example: '${env:PROXY_TOKEN}',
    },
  },
  description:
    'A shared proxy token every request on the route must carry (else 401 proxy_token_required); removed ' +
    'before forwarding. The value is write-only and may name ${env:NAME}. null: no token needed.',
};

const PREFIX = {
  description:
    'A path prefix starting and ending with "/"; not under /admin/, /health/, /ready/ or /metrics/. ' +
    'The longest matching prefix wins.',
  example: '/openai/',
  maxLength: ROUTE_LIMITS.prefixLength,
};
const UPSTREAM = {
  description: 'An http or https URL without credentials, query or fragment (a trailing "/" is dropped)',
  example: 'https://api.openai.com',
  maxLength: ROUTE_LIMITS.upstreamLength,
};
const STRIP = {
  description: 'Remove the prefix (keeping its leading "/") before forwarding',
  default: false,
};
const RELAY = {
  enum: RELAYS,
  nullable: true,
  description: 'Whose key parsing applies on this route; null: the relay setting',
};
const TIMEOUT = {
  type: Number,
  minimum: min,
  maximum: max,
  nullable: true,
  description: 'Seconds the upstream has to answer and between body chunks; null: the global timeouts',
};

/** `POST /routes`. */
export class CreateRouteDto implements RouteInput {
  @ApiProperty(PREFIX) prefix!: string;
  @ApiProperty(UPSTREAM) upstream!: string;
  @ApiPropertyOptional(STRIP) strip_prefix?: boolean;
  @ApiPropertyOptional(RELAY) relay?: Relay | null;
  @ApiPropertyOptional(TIMEOUT) timeout_seconds?: number | null;
  @ApiPropertyOptional(UPSTREAM_HEADERS_SCHEMA) upstream_headers?: Record<string, string>;
  @ApiPropertyOptional(REQUIRE_HEADER_SCHEMA) require_header?: { name: string; value: string } | null;
}

/** `PUT /routes/:id`: every field optional; those left out keep their stored value. */
export class UpdateRouteDto implements Partial<RouteInput> {
  @ApiPropertyOptional(PREFIX) prefix?: string;
  @ApiPropertyOptional(UPSTREAM) upstream?: string;
  @ApiPropertyOptional(STRIP) strip_prefix?: boolean;
  @ApiPropertyOptional(RELAY) relay?: Relay | null;
  @ApiPropertyOptional(TIMEOUT) timeout_seconds?: number | null;
  @ApiPropertyOptional({
    ...UPSTREAM_HEADERS_SCHEMA,
    description: `${UPSTREAM_HEADERS_SCHEMA.description} Given, it replaces the whole set ({} removes every one).`,
  })
  upstream_headers?: Record<string, string>;
  @ApiPropertyOptional({
    ...REQUIRE_HEADER_SCHEMA,
    description: `${REQUIRE_HEADER_SCHEMA.description} Left out: kept as it is.`,
  })
  require_header?: { name: string; value: string } | null;
}

/** The Route shape, for the OpenAPI document: header values are never shown. */
export class RouteView implements Route {
  @ApiProperty() id!: number;
  @ApiProperty({ example: '/openai/' }) prefix!: string;
  @ApiProperty({ example: 'https://api.openai.com' }) upstream!: string;
  @ApiProperty() strip_prefix!: boolean;
  @ApiProperty({ enum: RELAYS, nullable: true }) relay!: Relay | null;
  @ApiProperty({ type: Number, nullable: true }) timeout_seconds!: number | null;
  @ApiProperty({
    type: [String],
    description: 'The headers set upstream (lower case); their values are write-only',
    example: ['authorization'],
  })
  upstream_header_names!: string[];
  @ApiProperty({
    type: String,
    nullable: true,
    description: 'The proxy token’s header name; null when the route needs none',
  })
  require_header_name!: string | null;
  @ApiProperty({ format: 'date-time' }) created_at!: string;
  @ApiProperty({ format: 'date-time' }) updated_at!: string;
}

export class RoutePageView implements Page<Route> {
  @ApiProperty({ type: [RouteView] }) items!: RouteView[];
  @ApiProperty() total!: number;
  @ApiProperty() page!: number;
  @ApiProperty() page_size!: number;
}
