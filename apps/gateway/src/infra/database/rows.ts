/** Something that runs SQL: a DataSource or a transaction's EntityManager. */
export interface SqlRunner {
  query(sql: string, params?: unknown[]): Promise<unknown>;
}

/**
 * Runs a statement and returns its rows. TypeORM answers UPDATE and DELETE
 * with `[rows, rowCount]` but every other statement with `rows`; this
 * evens that out so `… RETURNING` works the same everywhere.
 */
export async function queryRows<T>(runner: SqlRunner, sql: string, params: unknown[] = []): Promise<T[]> {
  const result = await runner.query(sql, params);
  if (
    Array.isArray(result) &&
    result.length === 2 &&
    Array.isArray(result[0]) &&
    typeof result[1] === 'number'
  ) {
    return result[0] as T[];
  }
  return result as T[];
}
