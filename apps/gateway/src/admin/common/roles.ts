import { SetMetadata } from '@nestjs/common';
import type { Role } from '@keypin/shared';

export const PUBLIC_ROUTE = 'keypin:public';
export const REQUIRED_ROLE = 'keypin:role';

/** The route needs no token (login only; the docs are served outside Nest's guard). */
export const Public = () => SetMetadata(PUBLIC_ROUTE, true);

/** Admin-only routes. Without it: GET routes are open to every role, changes need `admin`. */
export const AdminOnly = () => SetMetadata(REQUIRED_ROLE, 'admin' satisfies Role);

/** The authenticated caller, set by the guard on the raw request. */
export interface Caller {
  userId: number;
  username: string;
  role: Role;
  ip: string | null;
}
