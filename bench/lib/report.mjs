// Plain-text tables for the bench's stdout.

export const ms = (v, digits = 3) =>
  v === null || v === undefined || Number.isNaN(v) ? '—' : v.toFixed(digits);
export const int = (v) =>
  v === null || v === undefined || Number.isNaN(v) ? '—' : Math.round(v).toLocaleString('en-US');
export const ratio = (v) => (v === null || v === undefined || !Number.isFinite(v) ? '—' : `${v.toFixed(2)}×`);
export const signedMs = (v) =>
  v === null || v === undefined || Number.isNaN(v) ? '—' : `${v >= 0 ? '+' : ''}${v.toFixed(3)}`;
export const mib = (bytes) =>
  bytes === null || bytes === undefined ? '—' : `${(bytes / 1048576).toFixed(1)} MiB`;

/** Renders rows (arrays of strings) with the first column left-aligned, the rest right-aligned. */
export function table(title, header, rows) {
  const all = [header, ...rows];
  const widths = header.map((_, c) => Math.max(...all.map((r) => String(r[c] ?? '').length)));
  const line = (r) =>
    r
      .map((cell, c) => (c === 0 ? String(cell).padEnd(widths[c]) : String(cell).padStart(widths[c])))
      .join('   ')
      .trimEnd();
  const rule = '-'.repeat(widths.reduce((a, b) => a + b, 0) + 3 * (widths.length - 1));
  return [`\n${title}`, line(header), rule, ...rows.map(line)].join('\n');
}

/**
 * JSON laid out the way Prettier lays it out (objects expanded, arrays of
 * plain values on one line when they fit in 110 columns), so the committed
 * results file passes `npm run format:check` as written.
 */
export function prettyJson(value) {
  const WIDTH = 110;
  const plain = (v) => v === null || typeof v !== 'object';
  const fmt = (v, indent, prefixLen) => {
    if (plain(v)) return JSON.stringify(v) ?? 'null';
    const pad = '  '.repeat(indent + 1);
    const end = '  '.repeat(indent);
    if (Array.isArray(v)) {
      if (v.length === 0) return '[]';
      if (v.every(plain)) {
        const one = `[${v.map((x) => JSON.stringify(x) ?? 'null').join(', ')}]`;
        if (prefixLen + one.length + 1 <= WIDTH) return one;
      }
      return `[\n${v.map((x) => pad + fmt(x, indent + 1, pad.length)).join(',\n')}\n${end}]`;
    }
    const entries = Object.entries(v).filter(([, x]) => x !== undefined && typeof x !== 'function');
    if (entries.length === 0) return '{}';
    const lines = entries.map(([k, x]) => {
      const head = `${pad}${JSON.stringify(k)}: `;
      return head + fmt(x, indent + 1, head.length);
    });
    return `{\n${lines.join(',\n')}\n${end}}`;
  };
  return `${fmt(value, 0, 0)}\n`;
}
