import { DataSource } from 'typeorm';
import { MIGRATIONS } from '../../../../../db/migrations';

/** Arbitrary constant: serialises migrations when several instances start together. */
const MIGRATION_LOCK_ID = 728_461_530;

export function createDataSource(databaseUrl: string, poolSize = 10): DataSource {
  return new DataSource({
    type: 'postgres',
    url: databaseUrl,
    synchronize: false,
    migrationsRun: false,
    migrations: MIGRATIONS,
    migrationsTableName: 'keypin_migrations',
    logging: false,
    extra: {
      max: poolSize,
      connectionTimeoutMillis: 3000,
      idleTimeoutMillis: 30_000,
      // Keeps a wedged query from pinning a hot-path request forever.
      statement_timeout: 15_000,
      application_name: 'keypin',
    },
  });
}

/** Runs pending migrations, one instance at a time. */
export async function runMigrations(ds: DataSource): Promise<string[]> {
  const runner = ds.createQueryRunner();
  await runner.connect();
  try {
    await runner.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_ID]);
    const done = await ds.runMigrations({ transaction: 'each' });
    return done.map((m) => m.name);
  } finally {
    await runner.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_ID]).catch(() => undefined);
    await runner.release();
  }
}
