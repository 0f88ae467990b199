import type { AdminUser, Role } from '@keypin/shared';
import type { DataSource } from 'typeorm';
import { queryRows } from '../infra/database/rows';

export interface UserRecord extends AdminUser {
  password_hash: string;
  session_version: number;
}

const COLUMNS = `id::int AS id, username, role, password_hash, session_version, created_at, updated_at`;

function toUser(r: UserRecord): UserRecord {
  return {
    ...r,
    created_at: new Date(r.created_at).toISOString(),
    updated_at: new Date(r.updated_at).toISOString(),
  };
}

export function publicUser(u: UserRecord): AdminUser {
  return { id: u.id, username: u.username, role: u.role, created_at: u.created_at, updated_at: u.updated_at };
}

export class UsersRepository {
  constructor(private readonly ds: DataSource) {}

  async findByUsername(username: string): Promise<UserRecord | null> {
    const rows: UserRecord[] = await this.ds.query(
      `SELECT ${COLUMNS} FROM admin_users WHERE lower(username) = lower($1)`,
      [username],
    );
    return rows[0] ? toUser(rows[0]) : null;
  }

  async findById(id: number): Promise<UserRecord | null> {
    const rows: UserRecord[] = await this.ds.query(`SELECT ${COLUMNS} FROM admin_users WHERE id = $1`, [id]);
    return rows[0] ? toUser(rows[0]) : null;
  }

  async list(limit: number, offset: number): Promise<{ items: UserRecord[]; total: number }> {
    const rows: (UserRecord & { total: string })[] = await this.ds.query(
      `SELECT ${COLUMNS}, count(*) OVER () AS total FROM admin_users ORDER BY id LIMIT $1 OFFSET $2`,
      [limit, offset],
    );
    // An empty page past the end still reports the real total.
    const total = rows[0] ? Number(rows[0].total) : offset > 0 ? await this.count() : 0;
    return { items: rows.map(toUser), total };
  }

  /** Inserts a user; null when the username is taken. */
  async create(username: string, passwordHash: string, role: Role): Promise<UserRecord | null> {
    const rows: UserRecord[] = await this.ds.query(
      `INSERT INTO admin_users (username, password_hash, role) VALUES ($1, $2, $3)
       ON CONFLICT DO NOTHING RETURNING ${COLUMNS}`,
      [username, passwordHash, role],
    );
    return rows[0] ? toUser(rows[0]) : null;
  }

  /** Creates the bootstrap admin unless an admin exists already. */
  async createFirstAdmin(username: string, passwordHash: string): Promise<boolean> {
    const rows: unknown[] = await this.ds.query(
      `INSERT INTO admin_users (username, password_hash, role)
       SELECT $1, $2, 'admin' WHERE NOT EXISTS (SELECT 1 FROM admin_users WHERE role = 'admin')
       ON CONFLICT DO NOTHING RETURNING id`,
      [username, passwordHash],
    );
    return rows.length > 0;
  }

  async delete(id: number): Promise<UserRecord | null> {
    const rows = await queryRows<UserRecord>(
      this.ds,
      `DELETE FROM admin_users WHERE id = $1 RETURNING ${COLUMNS}`,
      [id],
    );
    return rows[0] ? toUser(rows[0]) : null;
  }

  async count(): Promise<number> {
    const rows: { n: string }[] = await this.ds.query(`SELECT count(*) AS n FROM admin_users`);
    return Number(rows[0]?.n ?? 0);
  }

  async countAdmins(): Promise<number> {
    const rows: { n: string }[] = await this.ds.query(
      `SELECT count(*) AS n FROM admin_users WHERE role = 'admin'`,
    );
    return Number(rows[0]?.n ?? 0);
  }

  /** New password; bumping the session version ends every session of that user. */
  async setPassword(id: number, passwordHash: string): Promise<UserRecord | null> {
    const rows = await queryRows<UserRecord>(
      this.ds,
      `UPDATE admin_users SET password_hash = $2, session_version = session_version + 1, updated_at = now()
        WHERE id = $1 RETURNING ${COLUMNS}`,
      [id, passwordHash],
    );
    return rows[0] ? toUser(rows[0]) : null;
  }
}
