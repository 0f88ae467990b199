import type { RedisClient } from '../redis/redis.factory';
import { Client } from 'pg';
import type { Logger } from 'pino';
import type { RedisKeys } from '../redis/redis-keys';

export type ChangeTopic = 'binding' | 'settings' | 'routes';

export interface ChangeHandlers {
  /** A binding changed (key hash hex), or every binding may have (`*`). */
  binding(hashHex: string, origin: 'redis' | 'postgres'): void;
  settings(): void;
  /** The routes changed (any of them: the routing table is rebuilt whole). */
  routes(): void;
}

const PG_CHANNELS: Record<string, ChangeTopic> = {
  keypin_binding_changed: 'binding',
  keypin_settings_changed: 'settings',
  keypin_routes_changed: 'routes',
};

/**
 * Delivers change notices to this instance from two independent paths:
 * Redis pub/sub (published by whoever made the change through KeyPin) and
 * PostgreSQL NOTIFY (fired by triggers, so a change made directly in the
 * database is seen too, and changes still arrive while Redis is down).
 * After either path reconnects, everything cached is treated as changed,
 * since notices sent meanwhile were missed.
 */
export class ChangeFeed {
  private pg: Client | null = null;
  private stopped = false;
  private pgRetry: NodeJS.Timeout | null = null;
  private redisWasReady = false;

  constructor(
    private readonly databaseUrl: string,
    private readonly subscriber: RedisClient,
    private readonly keys: RedisKeys,
    private readonly handlers: ChangeHandlers,
    private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    this.subscriber.on('message', (channel: string, message: string) => {
      if (channel === this.keys.bindingChannel) this.handlers.binding(message, 'redis');
      else if (channel === this.keys.settingsChannel) this.handlers.settings();
      else if (channel === this.keys.routesChannel) this.handlers.routes();
    });
    this.subscriber.on('ready', () => {
      if (this.redisWasReady) this.everythingChanged('redis reconnected');
      this.redisWasReady = true;
    });
    // Subscribe once connected; ioredis re-subscribes by itself after a reconnect.
    const subscribe = () =>
      void this.subscriber
        .subscribe(this.keys.bindingChannel, this.keys.settingsChannel, this.keys.routesChannel)
        .catch((err: Error) => this.logger.warn({ err: err.message }, 'redis subscribe failed'));
    if (this.subscriber.status === 'ready') subscribe();
    else this.subscriber.once('ready', subscribe);
    await this.connectPg(false);
  }

  async publishSettings(publisher: RedisClient): Promise<void> {
    await publisher.publish(this.keys.settingsChannel, '1');
  }

  async publishRoutes(publisher: RedisClient): Promise<void> {
    await publisher.publish(this.keys.routesChannel, '1');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.pgRetry) clearTimeout(this.pgRetry);
    const pg = this.pg;
    this.pg = null;
    await pg?.end().catch(() => undefined);
  }

  private everythingChanged(why: string): void {
    this.logger.info(
      { why },
      'change feed reconnected: dropping cached bindings, reloading settings and routes',
    );
    this.handlers.binding('*', 'redis');
    this.handlers.settings();
    this.handlers.routes();
  }

  private async connectPg(reconnect: boolean): Promise<void> {
    if (this.stopped) return;
    const client = new Client({ connectionString: this.databaseUrl, connectionTimeoutMillis: 3000 });
    client.on('error', () => undefined);
    try {
      await client.connect();
      for (const channel of Object.keys(PG_CHANNELS)) await client.query(`LISTEN ${channel}`);
    } catch (err) {
      await client.end().catch(() => undefined);
      this.logger.warn({ err: (err as Error).message }, 'postgres LISTEN connection failed; retrying');
      this.schedulePg();
      return;
    }
    if (this.stopped) {
      await client.end().catch(() => undefined);
      return;
    }
    this.pg = client;
    client.on('notification', (n) => {
      const topic = PG_CHANNELS[n.channel];
      if (topic === 'binding' && n.payload) this.handlers.binding(n.payload, 'postgres');
      else if (topic === 'settings') this.handlers.settings();
      else if (topic === 'routes') this.handlers.routes();
    });
    client.on('end', () => {
      if (this.pg === client) this.pg = null;
      if (!this.stopped) this.schedulePg();
    });
    if (reconnect) this.everythingChanged('postgres reconnected');
  }

  private schedulePg(): void {
    if (this.stopped || this.pgRetry) return;
    this.pgRetry = setTimeout(() => {
      this.pgRetry = null;
      void this.connectPg(true);
    }, 1000);
  }
}
