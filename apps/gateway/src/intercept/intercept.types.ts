import type { InterceptReason } from '@keypin/shared';

/**
 * One blocked (or, in monitor mode, would-be-blocked) request, or — once
 * the recorder has merged the requests of one key from one IP for one
 * reason within one second — a record standing for `count` of them.
 */
export interface InterceptEvent {
  id: string;
  /** null: refused by the network policy before the key had a binding (docs/contract.md 10). */
  bindingId: number | null;
  tokenDisplay: string;
  /**
   * Without a binding: a short prefix of the key's HMAC, so records of two
   * keys that mask alike are not merged. Never stored.
   */
  keyRef?: string;
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
  /**
   * Requests this record stands for; absent means 1 (as the proxy hands
   * them over, and in batches written before records were merged).
   */
  count?: number;
}

/** Requests a record stands for. */
export function requestsOf(e: InterceptEvent): number {
  return e.count ?? 1;
}

/**
 * Where the proxy hands intercepts: must not block or throw. The sink keeps
 * the object it is given (and may raise its `count`), so each call must
 * pass a fresh one.
 */
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
