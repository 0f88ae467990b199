import { send, type Reply } from './http-client';

export const ADMIN_USERNAME = 'admin';
export const ADMIN_PASSWORD = 'integration-admin-password';

/** Env that makes the gateway create the bootstrap admin with a known password. */
export const ADMIN_ENV = { ADMIN_USERNAME, ADMIN_PASSWORD };

/**
 * A small admin API client for tests. Requests come from 127.0.0.250 (an
 * untrusted peer, so no X-Real-IP is needed) unless `from` says otherwise.
 */
export class AdminClient {
  token: string | null = null;

  constructor(
    readonly baseUrl: string,
    readonly from = '127.0.0.250',
  ) {}

  static async login(
    baseUrl: string,
    username = ADMIN_USERNAME,
    password = ADMIN_PASSWORD,
  ): Promise<AdminClient> {
    const c = new AdminClient(baseUrl);
    const r = await c.post('/admin/api/login', { username, password });
    if (r.status !== 200) throw new Error(`login failed: ${r.status} ${r.body}`);
    c.token = r.json<{ access_token: string }>().access_token;
    return c;
  }

  request(method: string, path: string, body?: unknown): Promise<Reply> {
    const headers: Record<string, string> = {};
    if (this.token) headers['authorization'] = `Bearer ${this.token}`;
    let payload: string | undefined;
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = typeof body === 'string' ? body : JSON.stringify(body);
    }
    return send(`${this.baseUrl}${path}`, { method, from: this.from, headers, body: payload });
  }

  get(path: string): Promise<Reply> {
    return this.request('GET', path);
  }
  post(path: string, body?: unknown): Promise<Reply> {
    return this.request('POST', path, body ?? {});
  }
  put(path: string, body?: unknown): Promise<Reply> {
    return this.request('PUT', path, body ?? {});
  }
  delete(path: string): Promise<Reply> {
    return this.request('DELETE', path);
  }
}
