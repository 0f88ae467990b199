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

/** The JSON form in queue jobs and spool files. */
export type InterceptWire = Omit<InterceptEvent, 'at'> & { at: string };

export function toWire(e: InterceptEvent): InterceptWire {
  return { ...e, at: e.at.toISOString() };
}

export function fromWire(w: InterceptWire): InterceptEvent {
  return { ...w, at: new Date(w.at) };
}
