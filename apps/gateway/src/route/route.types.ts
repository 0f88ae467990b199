import type { Relay } from '@keypin/shared';
import type { SealedSecret } from '../settings/secret-box';

/**
 * A route as the `routes` table holds it (docs/contract.md 10). Header values
 * are sealed with the settings' SecretBox (`secretBox.seal(text)`, jsonb), as
 * written: `${env:NAME}` references are resolved by each instance when it
 * builds its routing table, never stored resolved.
 */
export interface StoredRoute {
  id: number;
  prefix: string;
  /** No trailing slash. */
  upstream: string;
  strip_prefix: boolean;
  relay: Relay | null;
  timeout_seconds: number | null;
  /** Lower-case header name → sealed value. */
  upstream_headers: Record<string, SealedSecret>;
  /** Lower-case header name and sealed value, or null. */
  require_header: { name: string; value: SealedSecret } | null;
  created_at: Date;
  updated_at: Date;
}

/** What the routing table needs to build itself: every stored route. */
export interface RouteSource {
  listAll(): Promise<StoredRoute[]>;
}
