import { UpstreamError } from './upstream-error';

/**
 * An incremental, strict HTTP/1.x response parser for KeyPin's upstream hop.
 *
 * Why strict: KeyPin relays what the upstream says to a client over a
 * different connection. Any byte sequence two parsers could frame
 * differently (CL+TE, repeated Content-Length, bare LF, obs-fold, a
 * malformed chunk) is where response splitting and cache poisoning live, so
 * everything RFC 9112 does not define exactly is refused rather than
 * guessed at, the way llhttp's default (non-lenient) mode does.
 *
 * Why this shape: the common response (a small head and a JSON body in one
 * read) is parsed with native searches (`indexOf` of CRLFCRLF, one latin1
 * decode of the head, one regex pass for forbidden bytes) instead of a
 * byte-at-a-time state machine in JS; only chunk-size lines are read byte by
 * byte, and they are a few bytes long. Body bytes are handed on as
 * `subarray`s of the socket's buffer, never copied.
 *
 * The parser knows nothing about sockets: the caller feeds it buffers,
 * reads `done` / `failed` / `paused` after each `execute`, and decides what
 * bytes left over after a complete response mean (for the pool: a
 * connection that cannot be reused).
 */

/** Where a parsed response goes. Both return false to stop reading until the caller resumes. */
export interface ResponseSink {
  /** A final (non-1xx) response head. `headers` is flat [name, value, …], latin1, as received. */
  onResponseHead(statusCode: number, headers: string[], statusText: string): boolean;
  /** Body bytes, as they arrive (a view into the socket's buffer). */
  onResponseData(chunk: Buffer): boolean;
}

// Parser states. Plain numbers (not an enum) so the hot switch compares smis.
const S_HEAD = 0;
const S_LENGTH = 1;
const S_CHUNK_SIZE = 2;
const S_CHUNK_EXT = 4;
const S_CHUNK_SIZE_LF = 5;
const S_CHUNK_DATA = 6;
const S_CHUNK_DATA_CR = 7;
const S_CHUNK_DATA_LF = 8;
const S_TRAILERS = 9;
const S_UNTIL_CLOSE = 10;
// Terminal states: `execute` returns as soon as one is reached.
const S_DONE = 11;
const S_FAILED = 12;
const S_HALTED = 13;

const CR = 13;
const LF = 10;
const SP = 32;
const HT = 9;
const SEMICOLON = 59;

const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');
const STATUS_PREFIX = Buffer.from('HTTP/1.', 'latin1');

/** tchar (RFC 9110 §5.6.2): header names, transfer codings. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/**
 * Bytes that may not appear anywhere in a head or trailer section: CTLs
 * other than HTAB, CR and LF; DEL; a CR not followed by LF; an LF not
 * preceded by CR (bare LF is refused, as llhttp does by default).
 */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const FORBIDDEN_IN_HEAD = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)|(?<!\r)\n/;
const DIGITS = /^[0-9]+$/;
/** `Keep-Alive: timeout=N` (RFC 2068 §19.7.1.1), as undici reads it. */
const KEEP_ALIVE_TIMEOUT = /(?:^|[\s,;])timeout\s*=\s*(\d+)/i;

/** More hex digits than this in a chunk size is not a real size (2^64 needs 16). */
const MAX_CHUNK_SIZE_DIGITS = 16;

/** Hex digit values, -1 for anything else. */
const HEX = new Int8Array(256).fill(-1);
for (let i = 0; i < 10; i++) HEX[48 + i] = i;
for (let i = 0; i < 6; i++) {
  HEX[65 + i] = 10 + i;
  HEX[97 + i] = 10 + i;
}

export class ResponseParser {
  private state = S_HEAD;
  /** The request was HEAD: whatever the head says, no body follows. */
  private headRequest = false;
  /** Bytes of a head or trailer section split across reads (capacity `maxHeaderBytes`). */
  private acc: Buffer | null = null;
  private accLen = 0;
  /** Body bytes still expected: of the Content-Length, or of the current chunk. */
  private remaining = 0;
  private chunkSize = 0;
  private chunkSizeDigits = 0;
  /** Bytes of the current chunk-size line (bounded like a head). */
  private chunkLineBytes = 0;

  // Per-head facts, reset for each head (a 1xx and the final response have their own).
  private http11 = false;
  private contentLength = -1;
  private transferEncoding = false;
  private chunked = false;
  private closeToken = false;
  private keepAliveValue: string | null = null;
  private statusText = '';
  /** A 1xx before the final response said Connection: close: that holds for the connection. */
  private closeBefore = false;

  /** The final status code, once the head is parsed. */
  statusCode = 0;
  /** The consumer asked to stop reading; the caller clears this when it resumes. */
  paused = false;
  /** The connection may carry another request after this response (as far as the response goes). */
  keepAlive = false;
  /** A `Keep-Alive: timeout=N` in milliseconds, or -1. */
  keepAliveTimeoutMs = -1;
  /** Why parsing failed (state FAILED). */
  error: UpstreamError | null = null;

  constructor(
    private readonly sink: ResponseSink,
    private readonly maxHeaderBytes: number,
  ) {}

  /** Prepares for the response to a new request. */
  reset(headRequest: boolean): void {
    this.state = S_HEAD;
    this.headRequest = headRequest;
    this.accLen = 0;
    this.paused = false;
    this.statusCode = 0;
    this.keepAlive = false;
    this.keepAliveTimeoutMs = -1;
    this.error = null;
    this.closeBefore = false;
    this.resetHead();
  }

  /** The response is complete: bytes after it (if `execute` returned short) are not part of it. */
  get done(): boolean {
    return this.state === S_DONE;
  }

  get failed(): boolean {
    return this.state === S_FAILED;
  }

  /** The final head has been delivered (body bytes may be under way). */
  get headComplete(): boolean {
    return this.statusCode !== 0;
  }

  /** Nothing of a response has been received yet. */
  get idle(): boolean {
    return this.state === S_HEAD && this.accLen === 0;
  }

  /** Stops at once: the caller gave up on this response (abort, destroy) inside a sink call. */
  halt(): void {
    this.state = S_HALTED;
  }

  /**
   * Parses `buf` and returns how many of its bytes were consumed. Fewer than
   * `buf.length` means: paused (keep the rest for later), done (the rest
   * follows the response), or failed.
   */
  execute(buf: Buffer): number {
    const len = buf.length;
    let pos = 0;
    while (pos < len && !this.paused) {
      switch (this.state) {
        case S_HEAD:
          pos = this.scanSection(buf, pos, false);
          break;
        case S_LENGTH: {
          const n = Math.min(this.remaining, len - pos);
          const chunk = n === len ? buf : buf.subarray(pos, pos + n);
          pos += n;
          this.remaining -= n;
          // The body's last byte completes the response even if the
          // consumer pauses: nothing more needs to be read for it.
          if (this.remaining === 0) this.state = S_DONE;
          this.deliver(chunk);
          break;
        }
        case S_CHUNK_SIZE:
          pos = this.chunkSizeLine(buf, pos);
          break;
        case S_CHUNK_EXT:
          pos = this.chunkExtension(buf, pos);
          break;
        case S_CHUNK_SIZE_LF:
          if (buf[pos++] !== LF) this.fail('chunk size line not ended by CRLF');
          else if (this.chunkSize === 0) {
            this.state = S_TRAILERS;
            this.accLen = 0;
          } else {
            this.state = S_CHUNK_DATA;
            this.remaining = this.chunkSize;
          }
          break;
        case S_CHUNK_DATA: {
          const n = Math.min(this.remaining, len - pos);
          const chunk = n === len ? buf : buf.subarray(pos, pos + n);
          pos += n;
          this.remaining -= n;
          if (this.remaining === 0) this.state = S_CHUNK_DATA_CR;
          this.deliver(chunk);
          break;
        }
        case S_CHUNK_DATA_CR:
          if (buf[pos++] !== CR) this.fail('chunk data not followed by CRLF');
          else this.state = S_CHUNK_DATA_LF;
          break;
        case S_CHUNK_DATA_LF:
          if (buf[pos++] !== LF) this.fail('chunk data not followed by CRLF');
          else {
            this.state = S_CHUNK_SIZE;
            this.chunkSize = 0;
            this.chunkSizeDigits = 0;
            this.chunkLineBytes = 0;
          }
          break;
        case S_TRAILERS:
          // The usual end, "0\r\n\r\n" in one read: no trailer section to scan.
          if (this.accLen === 0 && pos + 1 < len && buf[pos] === CR && buf[pos + 1] === LF) {
            pos += 2;
            this.state = S_DONE;
          } else {
            if (this.accLen === 0) this.seedTrailers();
            pos = this.scanSection(buf, pos, true);
          }
          break;
        case S_UNTIL_CLOSE: {
          const chunk = pos === 0 ? buf : buf.subarray(pos);
          pos = len;
          this.deliver(chunk);
          break;
        }
        default:
          // DONE, FAILED, HALTED: nothing more is read.
          return pos;
      }
    }
    return pos;
  }

  /**
   * The connection delivered EOF. True if that completes the response (a
   * body delimited by the close, or a response already complete); false if
   * the response was cut short.
   */
  finish(): boolean {
    if (this.state === S_UNTIL_CLOSE) this.state = S_DONE;
    return this.state === S_DONE;
  }

  private deliver(chunk: Buffer): void {
    if (!this.sink.onResponseData(chunk) && this.state !== S_HALTED) this.paused = true;
  }

  private fail(message: string): void {
    this.state = S_FAILED;
    this.error = new UpstreamError('UPSTREAM_PARSE', `invalid upstream response: ${message}`);
  }

  private resetHead(): void {
    this.http11 = false;
    this.contentLength = -1;
    this.transferEncoding = false;
    this.chunked = false;
    this.closeToken = false;
    this.keepAliveValue = null;
  }

  // ---- Head and trailer sections ------------------------------------------------------------------

  /**
   * Finds the end of a head (or trailer section) starting at `pos` and
   * parses it; returns the position after it. A section split across reads
   * is gathered in `acc`, bounded by `maxHeaderBytes`.
   */
  private scanSection(buf: Buffer, pos: number, trailers: boolean): number {
    if (this.accLen === 0) {
      // Fast path: the whole head is in this read.
      const end = buf.indexOf(HEAD_END, pos);
      if (end !== -1) {
        if (end + 4 - pos > this.maxHeaderBytes) {
          this.fail(trailers ? 'trailer section too large' : 'response head too large');
          return pos;
        }
        this.parseSection(buf, pos, end + 2, trailers);
        return end + 4;
      }
    }
    const max = this.maxHeaderBytes;
    const acc = (this.acc ??= Buffer.allocUnsafe(max));
    const prev = this.accLen;
    const take = Math.min(buf.length - pos, max - prev);
    buf.copy(acc, prev, pos, pos + take);
    this.accLen = prev + take;
    // The terminator may straddle the previous read and this one.
    const end = acc.subarray(0, this.accLen).indexOf(HEAD_END, Math.max(0, prev - 3));
    if (end === -1) {
      if (this.accLen >= max) {
        this.fail(trailers ? 'trailer section too large' : 'response head too large');
        return pos;
      }
      // Not complete yet: refuse now what can never become valid, so a
      // bare-LF or non-HTTP response fails at once rather than at the
      // headers timeout.
      this.checkPartial(prev, trailers);
      return buf.length;
    }
    const used = end + 4 - prev;
    this.accLen = 0;
    this.parseSection(acc, trailers ? 2 : 0, end + 2, trailers);
    return pos + used;
  }

  /** A trailer section is scanned with the CRLF that ended "0\r\n" in front, so an empty one is CRLFCRLF too. */
  private seedTrailers(): void {
    const acc = (this.acc ??= Buffer.allocUnsafe(this.maxHeaderBytes));
    acc[0] = CR;
    acc[1] = LF;
    this.accLen = 2;
  }

  /** Early refusal of an incomplete section: bare LF / bare CR so far, or a head not starting "HTTP/1.". */
  private checkPartial(from: number, trailers: boolean): void {
    const acc = this.acc!;
    const end = this.accLen;
    // From one byte back: a CR ending the previous read pairs with this read's first byte.
    for (let i = Math.max(0, from - 1); i < end; i++) {
      const c = acc[i]!;
      if (c === LF && (i === 0 || acc[i - 1] !== CR)) return this.fail('bare LF');
      if (c === CR && i + 1 < end && acc[i + 1] !== LF) return this.fail('bare CR');
    }
    if (!trailers) {
      const n = Math.min(end, STATUS_PREFIX.length);
      if (acc.compare(STATUS_PREFIX, 0, n, 0, n) !== 0) this.fail('not an HTTP/1.x status line');
    }
  }

  /** Parses the lines of a section: buf[start, end) is whole lines, each ending CRLF. */
  private parseSection(buf: Buffer, start: number, end: number, trailers: boolean): void {
    const s = buf.toString('latin1', start, end);
    if (FORBIDDEN_IN_HEAD.test(s)) return this.fail('control character, bare CR or bare LF in the head');
    let p = 0;
    let headers: string[] | null = null;
    if (!trailers) {
      const eol = s.indexOf('\r\n');
      if (!this.statusLine(s, eol)) return;
      p = eol + 2;
      headers = [];
    }
    const n = s.length;
    while (p < n) {
      const eol = s.indexOf('\r\n', p);
      const first = s.charCodeAt(p);
      if (first === SP || first === HT) return this.fail('obsolete line folding');
      const colon = s.indexOf(':', p);
      if (colon <= p || colon > eol) return this.fail('header line without a name and colon');
      const name = s.slice(p, colon);
      if (!TOKEN.test(name)) return this.fail('invalid header name');
      let vs = colon + 1;
      let ve = eol;
      while (vs < ve && isOws(s.charCodeAt(vs))) vs++;
      while (ve > vs && isOws(s.charCodeAt(ve - 1))) ve--;
      const value = s.slice(vs, ve);
      const padded = ve !== eol;
      p = eol + 2;
      // Trailer fields are checked like headers, then dropped: nothing
      // downstream of this parser reads them, and honouring framing fields
      // there would be exactly the ambiguity this parser exists to refuse.
      if (headers === null) continue;
      headers.push(name, value);
      if (!this.framingHeader(name, value, padded)) return;
    }
    if (headers === null) {
      this.state = S_DONE;
      return;
    }
    this.headEnd(headers);
  }

  /** "HTTP/1.x NNN[ reason]"; false (and failed) otherwise. */
  private statusLine(s: string, eol: number): boolean {
    if (eol < 12 || !s.startsWith('HTTP/1.')) {
      this.fail('not an HTTP/1.x status line');
      return false;
    }
    const minor = s.charCodeAt(7);
    const d0 = s.charCodeAt(9) - 48;
    const d1 = s.charCodeAt(10) - 48;
    const d2 = s.charCodeAt(11) - 48;
    if (
      (minor !== 48 && minor !== 49) ||
      s.charCodeAt(8) !== SP ||
      // 1xx–9xx only: a status below 100 is not HTTP (and Node's writeHead would throw on it).
      !(d0 >= 1 && d0 <= 9 && d1 >= 0 && d1 <= 9 && d2 >= 0 && d2 <= 9) ||
      (eol > 12 && s.charCodeAt(12) !== SP)
    ) {
      this.fail('invalid status line');
      return false;
    }
    this.resetHead();
    this.http11 = minor === 49;
    this.statusCode = d0 * 100 + d1 * 10 + d2;
    this.statusText = eol > 12 ? s.slice(13, eol) : '';
    return true;
  }

  /**
   * Records Content-Length, Transfer-Encoding, Connection, Keep-Alive; false
   * (and failed) if invalid. `padded`: the value had whitespace after it.
   */
  private framingHeader(name: string, value: string, padded: boolean): boolean {
    // Compare lengths first: most names are none of these, and lower-casing allocates.
    switch (name.length) {
      case 10: {
        const lower = name.toLowerCase();
        if (lower === 'connection') this.connectionTokens(value);
        else if (lower === 'keep-alive') this.keepAliveValue = value;
        return true;
      }
      case 14:
        if (name.toLowerCase() === 'content-length') return this.contentLengthValue(value);
        return true;
      case 16:
        // Not standard, but llhttp honours it: a close there is a close.
        if (name.toLowerCase() === 'proxy-connection') this.connectionTokens(value);
        return true;
      case 17:
        if (name.toLowerCase() === 'transfer-encoding') return this.transferCodings(value, padded);
        return true;
      default:
        return true;
    }
  }

  private connectionTokens(value: string): void {
    const lower = value.toLowerCase();
    if (lower === 'keep-alive') return;
    if (lower === 'close') {
      this.closeToken = true;
      return;
    }
    for (const t of lower.split(',')) {
      if (t.trim() === 'close') this.closeToken = true;
    }
  }

  /**
   * Content-Length: 1*DIGIT; a list or repeated field only if every value
   * is the same (RFC 9110 §8.6), and no larger than a safe integer.
   */
  private contentLengthValue(value: string): boolean {
    let n: number;
    if (DIGITS.test(value)) {
      n = Number(value);
    } else {
      if (!value.includes(',')) {
        this.fail('invalid Content-Length');
        return false;
      }
      n = -1;
      for (const part of value.split(',')) {
        const v = trimOws(part);
        if (!DIGITS.test(v) || (n !== -1 && Number(v) !== n)) {
          this.fail('invalid Content-Length');
          return false;
        }
        n = Number(v);
      }
    }
    if (!Number.isSafeInteger(n) || (this.contentLength !== -1 && this.contentLength !== n)) {
      this.fail(Number.isSafeInteger(n) ? 'conflicting Content-Length values' : 'Content-Length too large');
      return false;
    }
    this.contentLength = n;
    return true;
  }

  /**
   * Transfer-Encoding, possibly over several fields: a list of codings in
   * which `chunked`, if present, must be last and only once (RFC 9112 §6.1,
   * §7): anything else leaves the body's end ambiguous.
   *
   * Stricter than the grammar where llhttp reads the same bytes another
   * way, so that no value is framed as chunked by one and to-the-close by
   * the other (an intermediary parsing like llhttp would desync from us):
   * no whitespace after the value ("chunked\t" is not chunked to llhttp), no
   * empty list elements ("chunked,"), no parameters on chunked ("chunked;a=b").
   */
  private transferCodings(value: string, padded: boolean): boolean {
    if (this.chunked) {
      // Another field after one that ended in chunked: chunked is no longer last.
      this.fail('chunked is not the last transfer coding');
      return false;
    }
    this.transferEncoding = true;
    if (padded) {
      this.fail('whitespace after Transfer-Encoding');
      return false;
    }
    if (value.length === 7 && value.toLowerCase() === 'chunked') {
      this.chunked = true;
      return true;
    }
    if (value === '') return true; // no codings: not chunked, the body runs to the close
    for (const part of value.split(',')) {
      const element = trimOws(part);
      const semi = element.indexOf(';');
      const coding = semi === -1 ? element : trimOws(element.slice(0, semi));
      if (!TOKEN.test(coding)) {
        this.fail('invalid transfer coding');
        return false;
      }
      const isChunked = coding.toLowerCase() === 'chunked';
      if (this.chunked) {
        this.fail(
          isChunked ? 'chunked transfer coding applied twice' : 'chunked is not the last transfer coding',
        );
        return false;
      }
      if (isChunked && semi !== -1) {
        this.fail('parameters on the chunked transfer coding');
        return false;
      }
      if (isChunked) this.chunked = true;
    }
    return true;
  }

  /** A head is complete: skip it (1xx) or choose how the body is framed and deliver it. */
  private headEnd(headers: string[]): void {
    const status = this.statusCode;
    if (status === 101) return this.fail('unexpected 101 Switching Protocols');
    if (this.transferEncoding) {
      if (this.contentLength !== -1) return this.fail('both Content-Length and Transfer-Encoding');
      // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing.
      if (!this.http11) return this.fail('Transfer-Encoding in an HTTP/1.0 response');
    }
    if (status < 200) {
      // 1xx: informational, never has a body; the real response follows.
      this.closeBefore ||= this.closeToken;
      this.statusCode = 0;
      this.resetHead();
      return;
    }
    let next: number;
    let framed = true;
    if (this.headRequest || status === 204 || status === 304) next = S_DONE;
    else if (this.chunked) next = S_CHUNK_SIZE;
    else if (this.transferEncoding) {
      next = S_UNTIL_CLOSE; // last coding not chunked: the close ends the body (RFC 9112 §6.3 item 4)
      framed = false;
    } else if (this.contentLength > 0) {
      next = S_LENGTH;
      this.remaining = this.contentLength;
    } else if (this.contentLength === 0) next = S_DONE;
    else {
      next = S_UNTIL_CLOSE;
      framed = false;
    }
    this.keepAlive = framed && this.http11 && !this.closeToken && !this.closeBefore;
    if (this.keepAlive && this.keepAliveValue !== null) {
      const m = KEEP_ALIVE_TIMEOUT.exec(this.keepAliveValue);
      if (m !== null) this.keepAliveTimeoutMs = Number(m[1]) * 1000;
    }
    this.state = next;
    this.chunkSize = 0;
    this.chunkSizeDigits = 0;
    this.chunkLineBytes = 0;
    // A bodiless response completes even if the consumer pauses.
    if (!this.sink.onResponseHead(status, headers, this.statusText) && this.state !== S_HALTED) {
      if (next !== S_DONE) this.paused = true;
    }
  }

  // ---- Chunked framing ------------------------------------------------------------------------

  /** Hex digits of a chunk size, then CR or ';'. */
  private chunkSizeLine(buf: Buffer, pos: number): number {
    const len = buf.length;
    while (pos < len) {
      const c = buf[pos++]!;
      const v = HEX[c]!;
      if (v >= 0) {
        if (++this.chunkSizeDigits > MAX_CHUNK_SIZE_DIGITS) {
          this.fail('chunk size too long');
          return pos;
        }
        const size = this.chunkSize * 16 + v;
        if (size > Number.MAX_SAFE_INTEGER) {
          this.fail('chunk size too large');
          return pos;
        }
        this.chunkSize = size;
        continue;
      }
      if (this.chunkSizeDigits === 0) this.fail('missing chunk size');
      else if (c === CR) this.state = S_CHUNK_SIZE_LF;
      else if (c === SEMICOLON) this.state = S_CHUNK_EXT;
      // Not even the BWS RFC 9112 §7.1.1 allows before ';': whitespace after
      // a chunk size is a known request-smuggling lever, and llhttp refuses it too.
      else this.fail('invalid character in chunk size');
      this.chunkLineBytes = this.chunkSizeDigits + 1;
      return pos;
    }
    return pos;
  }

  /** A chunk extension: tolerated and ignored, but no CTLs (except HTAB) and bounded. */
  private chunkExtension(buf: Buffer, pos: number): number {
    const len = buf.length;
    while (pos < len) {
      const c = buf[pos++]!;
      if (c === CR) {
        this.state = S_CHUNK_SIZE_LF;
        return pos;
      }
      if ((c < SP && c !== HT) || c === 127) {
        this.fail('control character in a chunk extension');
        return pos;
      }
      if (++this.chunkLineBytes > this.maxHeaderBytes) {
        this.fail('chunk extension too long');
        return pos;
      }
    }
    return pos;
  }
}

function isOws(c: number): boolean {
  return c === SP || c === HT;
}

function trimOws(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && isOws(s.charCodeAt(a))) a++;
  while (b > a && isOws(s.charCodeAt(b - 1))) b--;
  return a === 0 && b === s.length ? s : s.slice(a, b);
}
