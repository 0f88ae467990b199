import { JwtService } from '@nestjs/jwt';
import type { LoginResponse, Role } from '@keypin/shared';
import type { Logger } from 'pino';
import { KeypinError } from '../infra/http/all-exceptions.filter';
import type { Caller } from '../admin/common/roles';
import type { UserRecord, UsersRepository } from './users.repository';
import type { LockoutRepository } from './lockout.repository';
import { DUMMY_HASH, generatePassword, hashPassword, verifyPassword } from './password';

export const JWT_ISSUER = 'keypin';
export const JWT_AUDIENCE = 'keypin-admin';
const ALGORITHM = 'HS256';

interface TokenClaims {
  sub: string;
  usr: string;
  role: Role;
  /** Session version: a password change bumps it and ends older sessions. */
  sv: number;
}

/** Logins, tokens and who a token belongs to. */
export class AuthService {
  private readonly jwt: JwtService;

  constructor(
    private readonly users: UsersRepository,
    private readonly lockout: LockoutRepository,
    secret: Buffer,
    private readonly ttlSeconds: number,
    private readonly logger: Logger,
  ) {
    this.jwt = new JwtService({
      secret,
      signOptions: {
        algorithm: ALGORITHM,
        issuer: JWT_ISSUER,
        audience: JWT_AUDIENCE,
        expiresIn: ttlSeconds,
      },
      verifyOptions: { algorithms: [ALGORITHM], issuer: JWT_ISSUER, audience: JWT_AUDIENCE },
    });
  }

  async login(username: string, password: string, ip: string): Promise<LoginResponse> {
    // Counted before the password is checked: parallel attempts cannot all
    // pass a check made before any of them has failed.
    const attempt = await this.lockout.reserve(username, ip);
    if (!attempt.ok) {
      const retryAfter = Math.max(1, Math.ceil(attempt.retryAfterMs / 1000));
      throw new KeypinError(
        'too_many_attempts',
        `Too many failed logins; try again in ${Math.ceil(retryAfter / 60)} minute(s).`,
        { retry_after: retryAfter },
      );
    }
    let user: UserRecord | null;
    let ok: boolean;
    try {
      user = await this.users.findByUsername(username);
      ok = await verifyPassword(password, user?.password_hash ?? DUMMY_HASH);
    } catch (err) {
      // Not a wrong password: the attempt does not count against the caller.
      await attempt.release().catch(() => undefined);
      throw err;
    }
    if (!user || !ok) {
      // The reserved attempt stays counted: it is this failure.
      this.logger.warn({ ip }, 'admin login failed');
      throw new KeypinError('invalid_credentials', 'Wrong username or password.');
    }
    await this.lockout.clear(username, ip);
    const claims: TokenClaims = {
      sub: String(user.id),
      usr: user.username,
      role: user.role,
      sv: user.session_version,
    };
    const token = await this.jwt.signAsync(claims);
    this.logger.info({ user: user.username, ip }, 'admin logged in');
    return { access_token: token, token_type: 'Bearer', expires_in: this.ttlSeconds, role: user.role };
  }

  /** The caller a bearer token stands for, or a 401. The user must still exist with the same session. */
  async authenticate(token: string, ip: string | null): Promise<Caller> {
    let claims: TokenClaims;
    try {
      claims = await this.jwt.verifyAsync<TokenClaims & { exp?: unknown }>(token);
    } catch {
      throw new KeypinError('unauthorized', 'The session is invalid or has expired; log in again.');
    }
    // KeyPin always sets `exp`; a token without one would never expire.
    if (typeof (claims as { exp?: unknown }).exp !== 'number') {
      throw new KeypinError('unauthorized', 'The session is invalid or has expired; log in again.');
    }
    const user = await this.users.findById(Number(claims.sub));
    if (!user || user.session_version !== claims.sv) {
      throw new KeypinError('unauthorized', 'The session has ended; log in again.');
    }
    return { userId: user.id, username: user.username, role: user.role, ip };
  }

  /**
   * Creates the bootstrap admin when no admin exists. Returns the generated
   * password when ADMIN_PASSWORD was not given (printed once by the caller).
   */
  async bootstrap(
    username: string,
    password: string | null,
  ): Promise<{ created: boolean; generated: string | null }> {
    const generated = password === null ? generatePassword() : null;
    const created = await this.users.createFirstAdmin(username, await hashPassword(password ?? generated!));
    return { created, generated: created ? generated : null };
  }
}
