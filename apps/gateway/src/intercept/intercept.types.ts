import type { InterceptReason } from '@keypin/shared';

/** One blocked (or, in monitor mode, would-be-blocked) request. */
export interface InterceptEvent {
  id: string;
  bindingId: number;
  tokenDisplay: string;
  attemptIp: string;
  /** The binding's networks at the moment of the decision. */
  allowedIps: readonly string[];
  reason: InterceptReason;
  method: string;
  path: string;
  userAgent: string | null;
  /** False in monitor mode: recorded, but the request was forwarded. */
  enforced: boolean;
  at: Date;
}

/** Where the proxy hands intercepts: must not block or throw. */
export interface InterceptSink {
  record(event: InterceptEvent): void;
}
