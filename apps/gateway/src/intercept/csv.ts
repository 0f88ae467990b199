import { CSV_HEADER, type Intercept } from '@keypin/shared';

/** Record separator (RFC 4180). */
export const CRLF = '\r\n';

/**
 * First characters that make a spreadsheet read a cell as a formula (or, for
 * tab and CR, hide a formula behind them): such a field gets a leading `'`.
 * So does a field that starts with `'` itself, so that the prefix can always
 * be taken off again: a cell that starts with `'` holds the stored value
 * after that one character (what an auditor verifying the hash chain of an
 * export relies on, docs/integrity.md).
 */
const FORMULA_START = new Set(['=', '+', '-', '@', '\t', '\r', "'"]);

/** Characters that force a field into quotes (RFC 4180 2.6). */
const NEEDS_QUOTES = /[",\r\n]/;

/**
 * One CSV field: text that could start a formula (or starts with `'`) is
 * neutralised with a leading `'`, then the field is quoted when it holds a comma, a quote, CR or
 * LF (quotes doubled). Null is an empty field; numbers and booleans are
 * written as they are (they come from KeyPin, not from a caller).
 */
export function csvField(value: string | number | boolean | null | undefined): string {
  if (value === null || value === undefined) return '';
  if (typeof value !== 'string') return String(value);
  let text = value;
  if (text.length > 0 && FORMULA_START.has(text[0]!)) text = `'${text}`;
  if (!NEEDS_QUOTES.test(text)) return text;
  return `"${text.replace(/"/g, '""')}"`;
}

/** One record, CRLF-terminated. */
export function csvRecord(fields: readonly (string | number | boolean | null | undefined)[]): string {
  let line = '';
  for (let i = 0; i < fields.length; i++) {
    if (i > 0) line += ',';
    line += csvField(fields[i]);
  }
  return line + CRLF;
}

/** The export's header row (docs/contract.md 4). */
export const INTERCEPT_CSV_HEADER = csvRecord(CSV_HEADER);

/**
 * One intercept as a CSV record, in CSV_HEADER's order: allowed IPs joined
 * with a space, times in ISO-8601 UTC, `alerted` as true/false, the number
 * of requests the record stands for, then the hash chain (`seq`, `hash`,
 * `prev_hash`; empty until sealed) and `enforced` (true/false), which the
 * hash covers.
 */
export function interceptCsvRecord(i: Intercept): string {
  return csvRecord([
    i.intercepted_at,
    i.token_display,
    i.attempt_ip,
    i.allowed_ips.join(' '),
    i.reason,
    i.method,
    i.path,
    i.user_agent,
    i.alerted,
    i.binding_id,
    i.id,
    i.count,
    i.seq,
    i.hash,
    i.prev_hash,
    i.enforced,
  ]);
}
