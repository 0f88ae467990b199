import { randomUUID } from 'node:crypto';

/**
 * UUID version 7 (RFC 9562): 48-bit Unix milliseconds in front, random
 * bits after. Time-ordered ids keep the primary-key index of the
 * append-heavy intercept log compact and its inserts local. Built from
 * Node's pooled `randomUUID()` (its variant bits are already right), so it
 * costs little more than a v4 on the hot path.
 */
export function uuidv7(now: number = Date.now()): string {
  const v4 = randomUUID();
  const t = now.toString(16).padStart(12, '0');
  return `${t.slice(0, 8)}-${t.slice(8, 12)}-7${v4.slice(15, 18)}-${v4.slice(19)}`;
}
