import { type Role, ROLES } from '@keypin/shared';

/** A logged-in admin: the JWT and when it stops being accepted. */
export interface Session {
  token: string;
  username: string;
  role: Role;
  /** Epoch milliseconds. */
  expiresAt: number;
}

const STORAGE_KEY = 'keypin.session';

function isRole(v: unknown): v is Role {
  return (ROLES as readonly unknown[]).includes(v);
}

function isSession(v: unknown): v is Session {
  if (typeof v !== 'object' || v === null) return false;
  const s = v as Record<string, unknown>;
  return (
    typeof s['token'] === 'string' &&
    typeof s['username'] === 'string' &&
    isRole(s['role']) &&
    typeof s['expiresAt'] === 'number'
  );
}

type Listener = () => void;

/**
 * The session, kept in sessionStorage (one browser tab, gone when it closes)
 * until the JWT expires. Outside React so the API client can read the token;
 * components subscribe with `useSyncExternalStore`.
 */
export class SessionStore {
  private session: Session | null;
  /** Why the last session ended, for the login page. */
  private notice: string | null = null;
  private readonly listeners = new Set<Listener>();
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly storage: Storage | null = typeof sessionStorage === 'undefined' ? null : sessionStorage,
    private readonly now: () => number = Date.now,
  ) {
    this.session = this.read();
    if (this.session && this.session.expiresAt <= this.now()) {
      this.session = null;
      this.storage?.removeItem(STORAGE_KEY);
      this.notice = 'Your session expired. Log in again.';
    }
    this.arm();
  }

  private read(): Session | null {
    try {
      const raw = this.storage?.getItem(STORAGE_KEY);
      if (!raw) return null;
      const v: unknown = JSON.parse(raw);
      return isSession(v) ? v : null;
    } catch {
      return null;
    }
  }

  subscribe = (l: Listener): (() => void) => {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  };

  get = (): Session | null => this.session;
  getNotice = (): string | null => this.notice;
  token = (): string | null => {
    const s = this.session;
    if (s && s.expiresAt <= this.now()) {
      this.end('Your session expired. Log in again.');
      return null;
    }
    return s?.token ?? null;
  };

  start(session: Session): void {
    this.session = session;
    this.notice = null;
    this.storage?.setItem(STORAGE_KEY, JSON.stringify(session));
    this.arm();
    this.emit();
  }

  /** Ends the session; `notice` is shown on the login page. */
  end(notice: string | null = null): void {
    if (this.session === null && notice === this.notice) return;
    this.session = null;
    this.notice = notice;
    this.storage?.removeItem(STORAGE_KEY);
    this.arm();
    this.emit();
  }

  clearNotice(): void {
    if (this.notice === null) return;
    this.notice = null;
    this.emit();
  }

  /** Re-checks the clock (timers sleep in background tabs). */
  check(): void {
    if (this.session && this.session.expiresAt <= this.now()) this.end('Your session expired. Log in again.');
  }

  private arm(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (!this.session) return;
    // setTimeout holds at most ~24.8 days; a JWT lives far less.
    const ms = Math.min(this.session.expiresAt - this.now(), 2 ** 31 - 1);
    this.timer = setTimeout(() => this.check(), Math.max(0, ms));
  }

  private emit(): void {
    for (const l of this.listeners) l();
  }
}
