import type { Runtime } from '../runtime';

/**
 * Transitional: the runtime, for the controllers that still build their
 * own repositories (logs, dashboard, alerts). Every other controller gets
 * its own service from the composition root (`createAdminServices`).
 */
export class AdminContext {
  constructor(readonly rt: Runtime) {}
}
