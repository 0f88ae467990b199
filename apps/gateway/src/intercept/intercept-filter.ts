import {
  cidrErrorMessage,
  formatCidr,
  INTERCEPT_REASONS,
  type InterceptReason,
  MASK,
  maxPrefix,
  parseCidr,
  parseIp,
} from '@keypin/shared';
import { queryOne, queryOneOf } from '../admin/common/params';
import { invalid } from '../admin/common/validation';

/**
 * The filters of `GET /logs` and `GET /logs/export`, validated and in the
 * form the SQL needs. Every field is null when not asked for.
 */
export interface InterceptFilter {
  bindingId: number | null;
  /** ILIKE pattern (wildcards in the input escaped with `\`) for the masked key. */
  tokenLike: string | null;
  /** Canonical CIDR the attempted IP must lie in (an address becomes its /32 or /128). */
  network: string | null;
  reason: InterceptReason | null;
  /** Inclusive lower bound, canonical timestamptz text (microseconds, UTC). */
  from: string | null;
  /** Upper bound; inclusive for a date-time, exclusive (next midnight) for a date alone. */
  to: { at: string; inclusive: boolean } | null;
}

export const FILTER_FIELDS = ['binding_id', 'search', 'ip', 'reason', 'from', 'to'] as const;
const PAGING_FIELDS = ['page', 'page_size'];

/** Longest `search` accepted (a masked key is at most 9 characters). */
export const MAX_SEARCH_LENGTH = 256;

/** Escapes LIKE's wildcards so the text matches literally. */
function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}

// ------------------------------------------------------------------ times

const ISO_RE =
  /^(\d{4})-(\d{2})-(\d{2})(?:[Tt](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)?)?$/;

const MICROS_PER_SECOND = 1_000_000n;

/** A point in time in microseconds since the epoch (what PostgreSQL keeps). */
export interface Instant {
  micros: bigint;
  /** The input was a calendar date alone (`2025-01-31`). */
  dateOnly: boolean;
}

/**
 * Parses an ISO-8601 date (`2025-01-31`, midnight UTC) or date-time with a
 * zone (`2025-01-31T10:00:00Z`, `…+02:00`; seconds and fraction optional).
 * Refuses impossible dates and times, and date-times without a zone (which
 * would silently mean "the server's zone"). Returns an error text on failure.
 */
export function parseIsoInstant(text: string): Instant | string {
  const m = ISO_RE.exec(text);
  const expected = 'must be an ISO-8601 date or date-time, e.g. 2025-01-31 or 2025-01-31T10:00:00Z';
  if (m === null) return expected;
  const [, ys, mos, ds, hs, mis, ss, frac, zulu, sign, ohs, omis] = m;
  const year = Number(ys);
  const month = Number(mos);
  const day = Number(ds);
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  if (
    year < 1 ||
    date.getUTCFullYear() !== year ||
    date.getUTCMonth() !== month - 1 ||
    date.getUTCDate() !== day
  ) {
    return `is not a real calendar date (${text})`;
  }
  if (hs === undefined) return { micros: BigInt(date.getTime()) * 1000n, dateOnly: true };

  const hour = Number(hs);
  const minute = Number(mis);
  const second = ss === undefined ? 0 : Number(ss);
  if (hour > 23 || minute > 59 || second > 59) return `is not a real time of day (${text})`;
  if (zulu === undefined && sign === undefined) {
    return 'needs a time zone: end it with Z or an offset like +02:00';
  }
  let offsetMinutes = 0;
  if (sign !== undefined) {
    const oh = Number(ohs);
    const om = omis === undefined ? 0 : Number(omis);
    if (oh > 23 || om > 59) return `has an invalid time zone offset (${text})`;
    offsetMinutes = (sign === '-' ? -1 : 1) * (oh * 60 + om);
  }
  const ms = date.getTime() + ((hour * 60 + minute - offsetMinutes) * 60 + second) * 1000;
  const fraction = BigInt((frac ?? '').padEnd(6, '0').slice(0, 6));
  return { micros: BigInt(ms) * 1000n + fraction, dateOnly: false };
}

/** Canonical PostgreSQL-readable UTC text with microseconds: `2025-01-31T10:00:00.000000Z`. */
export function formatInstant(micros: bigint): string {
  let seconds = micros / MICROS_PER_SECOND;
  let rest = micros % MICROS_PER_SECOND;
  if (rest < 0n) {
    rest += MICROS_PER_SECOND;
    seconds -= 1n;
  }
  const base = new Date(Number(seconds) * 1000).toISOString().slice(0, 19);
  return `${base}.${rest.toString().padStart(6, '0')}Z`;
}

const DAY_MICROS = 86_400n * MICROS_PER_SECOND;

function instant(query: Record<string, unknown>, field: 'from' | 'to'): Instant | null {
  const raw = queryOne(query, field);
  if (raw === null || raw.trim() === '') return null;
  const r = parseIsoInstant(raw.trim());
  if (typeof r === 'string') throw invalid(field, r);
  return r;
}

// ---------------------------------------------------------------- filters

/**
 * Reads the filters from a query string. Unknown parameters are refused
 * (a misspelt filter must not silently widen an export); `page` and
 * `page_size` are left to `parsePaging`. Throws 422 naming the field.
 */
export function parseInterceptFilter(query: Record<string, unknown>): InterceptFilter {
  for (const name of Object.keys(query)) {
    if (!(FILTER_FIELDS as readonly string[]).includes(name) && !PAGING_FIELDS.includes(name)) {
      throw invalid(name, `is not a filter; use ${FILTER_FIELDS.join(', ')}`);
    }
  }

  let bindingId: number | null = null;
  const rawBinding = queryOne(query, 'binding_id');
  if (rawBinding !== null) {
    if (!/^\d{1,15}$/.test(rawBinding) || Number(rawBinding) < 1) {
      throw invalid('binding_id', 'must be a positive integer');
    }
    bindingId = Number(rawBinding);
  }

  let tokenLike: string | null = null;
  const rawSearch = queryOne(query, 'search');
  if (rawSearch !== null) {
    if (rawSearch.length > MAX_SEARCH_LENGTH) {
      throw invalid('search', `must be at most ${MAX_SEARCH_LENGTH} characters`);
    }
    // The console shows masks with "…"; people type "...".
    const text = rawSearch.trim().replace(/\.\.\./g, MASK);
    if (text !== '') tokenLike = `%${escapeLike(text)}%`;
  }

  let network: string | null = null;
  const rawIp = queryOne(query, 'ip');
  if (rawIp !== null && rawIp.trim() !== '') {
    const text = rawIp.trim();
    const ip = parseIp(text);
    if (ip !== null) {
      network = formatCidr({ version: ip.version, bytes: ip.bytes, prefix: maxPrefix(ip.version) });
    } else {
      const cidr = parseCidr(text);
      if (!cidr.ok) throw invalid('ip', cidrErrorMessage(text, cidr.error));
      network = formatCidr(cidr.cidr);
    }
  }

  const reason = queryOneOf(query, 'reason', INTERCEPT_REASONS);

  const from = instant(query, 'from');
  const toInstant = instant(query, 'to');
  // A date alone as the upper bound means "up to the end of that day".
  const to =
    toInstant === null
      ? null
      : toInstant.dateOnly
        ? { micros: toInstant.micros + DAY_MICROS, inclusive: false }
        : { micros: toInstant.micros, inclusive: true };
  if (from !== null && to !== null && (to.inclusive ? from.micros > to.micros : from.micros >= to.micros)) {
    throw invalid('from', 'must not be after to');
  }

  return {
    bindingId,
    tokenLike,
    network,
    reason,
    from: from === null ? null : formatInstant(from.micros),
    to: to === null ? null : { at: formatInstant(to.micros), inclusive: to.inclusive },
  };
}
