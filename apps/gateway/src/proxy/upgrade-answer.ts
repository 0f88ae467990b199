/**
 * Reading the relay's answer to a WebSocket upgrade, for `websocket-tunnel.ts`.
 *
 * The tunnel may only start piping raw bytes once the relay has answered
 * `101 Switching Protocols` (docs/contract.md 2.4): before that, the connection to
 * the relay is still an HTTP/1.1 connection, and client bytes written to it
 * would be parsed by the relay as further requests that KeyPin never
 * judged. So the tunnel parses the answer's head itself, and for any other
 * answer relays exactly one response (head + body, as framed by the relay)
 * and then closes both connections.
 */
import { HOP_BY_HOP_HEADERS } from './hop-by-hop';

/** The relay's answer heads (interim ones included) may take at most this many bytes. */
export const MAX_ANSWER_HEAD_BYTES = 64 * 1024;

/** A refusal's body is relayed up to this many bytes; past it both connections are cut. */
export const MAX_REFUSAL_BODY_BYTES = 1024 * 1024;

/** A chunk-size or trailer line longer than this is not a relay we can trust to frame. */
const MAX_CHUNK_LINE_BYTES = 8 * 1024;

const CRLF = Buffer.from('\r\n', 'latin1');
const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');

const STATUS_LINE = /^HTTP\/1\.[01] ([1-5]\d\d)(?: [^\r\n]*)?$/;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

export interface AnswerHead {
  status: number;
  /** The status line as received. */
  statusLine: string;
  /** Header fields in order, names as received, values without surrounding whitespace. */
  fields: [name: string, value: string][];
  /** The head exactly as received, final CRLFCRLF included. */
  raw: Buffer;
}

export type HeadProgress =
  | { kind: 'incomplete' }
  | { kind: 'invalid'; reason: string }
  /** `rest` holds the bytes that followed the head in what was read so far. */
  | { kind: 'final'; head: AnswerHead; rest: Buffer };

/**
 * Accumulates the relay's bytes until its final answer head is complete.
 *
 * Interim `1xx` answers other than 101 (100 Continue, 102, 103 Early
 * Hints) are read and dropped: RFC 9110 §15.2 lets any of them precede the
 * final answer, and the relay's final word is what decides between a
 * tunnel and a refusal. They count against the same size cap, and the
 * caller's answer timeout keeps running, so a relay cannot stall us with
 * an endless series of them. 101 is the final answer that opens the tunnel.
 */
export class AnswerHeadReader {
  private pending: Buffer = Buffer.alloc(0);
  /** Bytes of dropped interim heads so far (counted against the cap). */
  private consumed = 0;

  push(chunk: Buffer): HeadProgress {
    const searchFrom = Math.max(0, this.pending.length - (CRLFCRLF.length - 1));
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    return this.scan(searchFrom);
  }

  private scan(searchFrom: number): HeadProgress {
    for (;;) {
      const end = this.pending.indexOf(CRLFCRLF, searchFrom);
      if (end === -1) {
        return this.consumed + this.pending.length > MAX_ANSWER_HEAD_BYTES
          ? { kind: 'invalid', reason: 'answer head too large' }
          : { kind: 'incomplete' };
      }
      const headLength = end + CRLFCRLF.length;
      this.consumed += headLength;
      if (this.consumed > MAX_ANSWER_HEAD_BYTES) return { kind: 'invalid', reason: 'answer head too large' };
      const parsed = parseAnswerHead(this.pending.subarray(0, headLength));
      if (typeof parsed === 'string') return { kind: 'invalid', reason: parsed };
      const rest = this.pending.subarray(headLength);
      if (parsed.status >= 200 || parsed.status === 101) return { kind: 'final', head: parsed, rest };
      this.pending = rest;
      searchFrom = 0;
    }
  }
}

/** Parses one complete head (ending in CRLFCRLF); a string is the reason it is unusable. */
export function parseAnswerHead(raw: Buffer): AnswerHead | string {
  const lines = raw.toString('latin1', 0, raw.length - CRLFCRLF.length).split('\r\n');
  const statusLine = lines[0] ?? '';
  const m = STATUS_LINE.exec(statusLine);
  if (!m) return 'malformed status line';
  const fields: [string, string][] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    // Obsolete line folding and lines without a name are refused, as RFC
    // 9112 §5.2 allows: guessing how a relay meant them is how framing
    // disagreements start.
    if (colon <= 0) return 'malformed header line';
    const name = line.slice(0, colon);
    if (!HEADER_NAME.test(name)) return 'malformed header name';
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    // A bare CR or LF would let the relay smuggle a line into the head we rewrite.
    if (/[\r\n\0]/.test(value)) return 'malformed header value';
    fields.push([name, value]);
  }
  return { status: Number(m[1]), statusLine, fields, raw };
}

export type BodyFraming =
  /** No body at all (HEAD, 204, 304). */
  | { kind: 'none' }
  | { kind: 'length'; length: number }
  | { kind: 'chunked' }
  /** Delimited by the relay closing the connection. */
  | { kind: 'close' };

/** How the body of a (non-101) final answer ends (RFC 9112 §6.3); a string is why it cannot be known. */
export function bodyFramingOf(head: AnswerHead, requestMethod: string): BodyFraming | string {
  if (requestMethod === 'HEAD' || head.status === 204 || head.status === 304) return { kind: 'none' };
  let transferEncoding: string | null = null;
  let length: string | null = null;
  for (const [name, value] of head.fields) {
    const lower = name.toLowerCase();
    if (lower === 'transfer-encoding') {
      transferEncoding = transferEncoding === null ? value : `${transferEncoding}, ${value}`;
    } else if (lower === 'content-length') {
      if (!/^\d{1,15}$/.test(value)) return 'malformed Content-Length';
      if (length !== null && length !== value) return 'conflicting Content-Length';
      length = value;
    }
  }
  if (transferEncoding !== null) {
    const codings = transferEncoding.split(',');
    const last = codings[codings.length - 1]?.trim().toLowerCase();
    return last === 'chunked' ? { kind: 'chunked' } : { kind: 'close' };
  }
  if (length !== null) return { kind: 'length', length: Number(length) };
  return { kind: 'close' };
}

/**
 * Fields that frame the relayed body: kept even though `Transfer-Encoding`
 * is hop-by-hop, or `Connection` names them, since the body goes to the
 * client byte for byte, framed as the relay framed it.
 */
const FRAMING = new Set(['content-length', 'transfer-encoding']);

/**
 * The head sent to the client for a refusal: the relay's status line and
 * fields, without hop-by-hop fields (`hop-by-hop.ts`, and those
 * `Connection` names) other than the framing ones, with
 * `Connection: close` since both connections end after this answer.
 * `Content-Length` is dropped beside `Transfer-Encoding`, as RFC 9112 §6.3
 * asks of a proxy.
 */
export function refusalHead(head: AnswerHead): string {
  const named = new Set<string>();
  for (const [name, value] of head.fields) {
    if (name.toLowerCase() !== 'connection') continue;
    for (const token of value.split(',')) named.add(token.trim().toLowerCase());
  }
  let out = `${head.statusLine}\r\n`;
  const hasTransferEncoding = head.fields.some(([n]) => n.toLowerCase() === 'transfer-encoding');
  for (const [name, value] of head.fields) {
    const lower = name.toLowerCase();
    if ((HOP_BY_HOP_HEADERS.has(lower) || named.has(lower)) && !FRAMING.has(lower)) continue;
    if (lower === 'content-length' && hasTransferEncoding) continue;
    out += `${name}: ${value}\r\n`;
  }
  return `${out}Connection: close\r\n\r\n`;
}

/** Result of feeding body bytes: `used` bytes of the chunk belong to the body. */
export type BodyProgress = { used: number; done: boolean } | { error: string };

/** Finds where a relayed body ends, chunk by chunk, without copying it. */
export interface BodyEnd {
  feed(chunk: Buffer): BodyProgress;
}

export function bodyEndFor(framing: BodyFraming): BodyEnd {
  switch (framing.kind) {
    case 'none':
      return new LengthEnd(0);
    case 'length':
      return new LengthEnd(framing.length);
    case 'chunked':
      return new ChunkedEnd();
    case 'close':
      return { feed: (chunk) => ({ used: chunk.length, done: false }) };
  }
}

class LengthEnd implements BodyEnd {
  constructor(private left: number) {}

  feed(chunk: Buffer): BodyProgress {
    const used = Math.min(this.left, chunk.length);
    this.left -= used;
    return { used, done: this.left === 0 };
  }
}

type ChunkState = 'size' | 'data' | 'data-crlf' | 'trailer';

/**
 * Follows chunked framing (RFC 9112 §7.1) to find the end of the body, so
 * a refusal from a relay that keeps its connection open still ends. Chunk
 * data is skipped by arithmetic; only the short size and trailer lines are
 * searched (with `indexOf`), so large bodies cost no per-byte work.
 */
export class ChunkedEnd implements BodyEnd {
  private state: ChunkState = 'size';
  /** Data bytes left in the current chunk, or CRLF bytes left after it. */
  private left = 0;
  /** A size or trailer line split across reads. */
  private partial = '';

  feed(chunk: Buffer): BodyProgress {
    let at = 0;
    while (at < chunk.length) {
      if (this.state === 'data' || this.state === 'data-crlf') {
        const next = this.skipData(chunk, at);
        if (typeof next === 'string') return { error: next };
        at = next;
        continue;
      }
      const read = this.readLine(chunk, at);
      if (typeof read === 'string') return { error: read };
      if (read === null) break;
      at = read.next;
      if (this.state === 'trailer') {
        if (read.line === '') return { used: at, done: true };
        continue;
      }
      const size = chunkSize(read.line);
      if (size === null) return { error: 'malformed chunk size' };
      if (size === 0) {
        this.state = 'trailer';
      } else {
        this.state = 'data';
        this.left = size;
      }
    }
    return { used: chunk.length, done: false };
  }

  /** The next complete line from `at`, null when it continues in the next read. */
  private readLine(chunk: Buffer, at: number): { line: string; next: number } | null | string {
    // A CRLF split between two reads: the CR ended the previous one.
    if (this.partial.endsWith('\r') && chunk[at] === 0x0a) {
      const line = this.partial.slice(0, -1);
      this.partial = '';
      return { line, next: at + 1 };
    }
    const eol = chunk.indexOf(CRLF, at);
    const text = chunk.toString('latin1', at, eol === -1 ? chunk.length : eol);
    if (this.partial.length + text.length > MAX_CHUNK_LINE_BYTES) return 'chunk line too long';
    if (eol === -1) {
      this.partial += text;
      return null;
    }
    const line = this.partial + text;
    this.partial = '';
    return { line, next: eol + CRLF.length };
  }

  /** Skips chunk data and the CRLF after it; returns the new offset or an error. */
  private skipData(chunk: Buffer, at: number): number | string {
    if (this.state === 'data') {
      const n = Math.min(this.left, chunk.length - at);
      this.left -= n;
      if (this.left === 0) {
        this.state = 'data-crlf';
        this.left = CRLF.length;
      }
      return at + n;
    }
    if (chunk[at] !== CRLF[CRLF.length - this.left]) return 'missing CRLF after chunk data';
    this.left--;
    if (this.left === 0) this.state = 'size';
    return at + 1;
  }
}

/** The size of a chunk-size line (extensions after `;` ignored), or null. */
function chunkSize(line: string): number | null {
  const m = /^([0-9A-Fa-f]{1,12})[ \t]*(?:;[^\r\n]*)?$/.exec(line);
  return m ? parseInt(m[1]!, 16) : null;
}
