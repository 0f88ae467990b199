/**
 * The canonical JSON the hash chains hash (docs/integrity.md): RFC 8785
 * (JSON Canonicalization Scheme) for the values KeyPin's records hold.
 *
 * - no whitespace anywhere;
 * - object members sorted by key, comparing UTF-16 code units (JavaScript's
 *   default string order; RFC 8785 3.2.3), recursively; a member whose
 *   value is `undefined` is left out, `null` is written;
 * - arrays in their own order;
 * - strings as ECMAScript's JSON.stringify writes them (RFC 8785 3.2.2.2):
 *   `"` and `\` escaped, \b \t \n \f \r short, other characters below
 *   U+0020 as \u00xx (lower-case hex), everything else as itself (no \u
 *   escapes for non-ASCII, `/` not escaped);
 * - numbers as ECMAScript writes them (RFC 8785 3.2.2.3): integers in plain
 *   decimal; NaN and infinities are refused, -0 is 0;
 * - true, false, null.
 *
 * Record-specific choices (times, addresses, which fields) are made by the
 * callers in `record-hash.ts`, which hand over plain strings, numbers,
 * booleans, null and arrays/objects of those.
 */
export function canonicalJson(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`canonical JSON has no form for ${value}`);
      return JSON.stringify(value);
    case 'object': {
      if (value === null) return 'null';
      if (Array.isArray(value)) {
        let out = '[';
        for (let i = 0; i < value.length; i++) {
          if (i > 0) out += ',';
          // Like JSON.stringify: a hole or undefined element is null.
          const v: unknown = value[i];
          out += v === undefined ? 'null' : canonicalJson(v);
        }
        return out + ']';
      }
      if (value instanceof Date) throw new TypeError('canonical JSON takes times as strings, not Date');
      const keys = Object.keys(value).sort();
      let out = '{';
      let first = true;
      for (const k of keys) {
        const v = (value as Record<string, unknown>)[k];
        if (v === undefined) continue;
        if (!first) out += ',';
        first = false;
        out += JSON.stringify(k) + ':' + canonicalJson(v);
      }
      return out + '}';
    }
    default:
      throw new TypeError(`canonical JSON has no form for a ${typeof value}`);
  }
}
