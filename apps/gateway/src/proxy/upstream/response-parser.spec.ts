import { describe, expect, it } from 'vitest';
import { ResponseParser, type ResponseSink } from './response-parser';

/** What the parser made of a byte string, in a form two runs can be compared by. */
type Outcome =
  | {
      kind: 'response';
      status: number;
      statusText: string;
      headers: string[];
      body: string;
      /** Complete by its framing (not by EOF). */
      framed: boolean;
      keepAlive: boolean;
      keepAliveTimeoutMs: number;
      /** Bytes after the end of the response. */
      extra: number;
    }
  | { kind: 'incomplete'; headSeen: boolean }
  | { kind: 'error'; message: string };

interface FeedOptions {
  head?: boolean;
  /** Return false from every n-th sink call (then resume, as the pool does). */
  pauseEvery?: number;
  maxHeaderBytes?: number;
}

/** Feeds `raw` in the given pieces (sizes), then EOF, and reports the outcome. */
function run(raw: Buffer, pieces: number[], opts: FeedOptions = {}): Outcome {
  let status = 0;
  let statusText = '';
  let headers: string[] = [];
  const body: Buffer[] = [];
  let heads = 0;
  let calls = 0;
  const sink: ResponseSink = {
    onResponseHead(s, h, t) {
      heads++;
      status = s;
      headers = h;
      statusText = t;
      return opts.pauseEvery === undefined || ++calls % opts.pauseEvery !== 0;
    },
    onResponseData(chunk) {
      // Copied: the parser hands out views of the caller's buffer.
      body.push(Buffer.from(chunk));
      return opts.pauseEvery === undefined || ++calls % opts.pauseEvery !== 0;
    },
  };
  const p = new ResponseParser(sink, opts.maxHeaderBytes ?? 16 * 1024);
  p.reset(opts.head ?? false);
  let pos = 0;
  let extra = 0;
  for (const size of pieces) {
    let buf = raw.subarray(pos, pos + size);
    pos += size;
    while (buf.length > 0) {
      if (p.done) {
        extra += buf.length;
        break;
      }
      const n = p.execute(buf);
      if (p.failed) return { kind: 'error', message: p.error!.message };
      buf = buf.subarray(n);
      if (p.paused) p.paused = false; // resume at once
    }
  }
  const framed = p.done;
  if (!framed && !p.finish()) return { kind: 'incomplete', headSeen: p.headComplete };
  if (!p.done) throw new Error('finish() lied');
  expect(heads).toBe(1);
  return {
    kind: 'response',
    status,
    statusText,
    headers,
    body: Buffer.concat(body).toString('latin1'),
    framed,
    keepAlive: p.keepAlive,
    keepAliveTimeoutMs: p.keepAliveTimeoutMs,
    extra,
  };
}

/** A deterministic PRNG (mulberry32) so random splits are the same on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Every way of cutting `len` bytes this test uses: whole, 1-byte, every 2-way split, random pieces. */
function splits(len: number, seed = 1): number[][] {
  const out: number[][] = [[len], new Array<number>(len).fill(1)];
  for (let i = 1; i < len; i++) out.push([i, len - i]);
  const rnd = prng(seed);
  for (let k = 0; k < 20; k++) {
    const parts: number[] = [];
    let left = len;
    while (left > 0) {
      const n = Math.min(left, 1 + Math.floor(rnd() * 12));
      parts.push(n);
      left -= n;
    }
    out.push(parts);
  }
  return out;
}

/** Parses `text` every way it can be cut (and with pauses): all must agree; returns the outcome. */
function parseAllWays(text: string | Buffer, opts: FeedOptions = {}): Outcome {
  const raw = typeof text === 'string' ? Buffer.from(text, 'latin1') : text;
  const whole = run(raw, [raw.length], opts);
  for (const pieces of splits(raw.length)) {
    const got = run(raw, pieces, opts);
    if (whole.kind === 'error') expect(got.kind, `split ${pieces.join(',')}`).toBe('error');
    else expect(got, `split ${pieces.join(',')}`).toEqual(whole);
  }
  for (const pauseEvery of [1, 2]) {
    const got = run(raw, [raw.length], { ...opts, pauseEvery });
    if (whole.kind === 'error') expect(got.kind).toBe('error');
    else expect(got).toEqual(whole);
  }
  return whole;
}

function ok(text: string, opts: FeedOptions = {}) {
  const out = parseAllWays(text, opts);
  if (out.kind !== 'response') throw new Error(`expected a response, got ${JSON.stringify(out)}`);
  return out;
}

function rejected(text: string, opts: FeedOptions = {}): string {
  const out = parseAllWays(text, opts);
  if (out.kind !== 'error') throw new Error(`expected a parse error, got ${JSON.stringify(out)}`);
  return out.message;
}

describe('ResponseParser: heads', () => {
  it('parses status, reason and headers in original case and order, values trimmed of SP/HT', () => {
    const r = ok(
      'HTTP/1.1 201 Created Here\r\nContent-Type:  application/json \t\r\nX-A:b c\r\nx-a: \r\nContent-Length: 2\r\n\r\n{}',
    );
    expect(r).toMatchObject({
      status: 201,
      statusText: 'Created Here',
      body: '{}',
      framed: true,
      keepAlive: true,
    });
    expect(r.headers).toEqual([
      'Content-Type',
      'application/json',
      'X-A',
      'b c',
      'x-a',
      '',
      'Content-Length',
      '2',
    ]);
  });

  it('accepts an empty reason with or without its space', () => {
    expect(ok('HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n').statusText).toBe('');
    expect(ok('HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n').statusText).toBe('');
  });

  it('passes obs-text bytes through as latin1', () => {
    const r = ok('HTTP/1.1 200 OK\r\nX-Name: caf\xe9\xff\r\nContent-Length: 0\r\n\r\n');
    expect(r.headers[1]).toBe('caf\u00e9\u00ff');
  });

  it.each([
    ['HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'],
    ['HTTP/2.0 status line', 'HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n'],
    ['HTTP/1.2', 'HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n'],
    ['lower-case protocol', 'http/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'],
    ['two-digit status', 'HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n'],
    ['four-digit status', 'HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n'],
    ['status below 100', 'HTTP/1.1 099 X\r\nContent-Length: 0\r\n\r\n'],
    ['non-digit status', 'HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n'],
    ['two spaces after version', 'HTTP/1.1  200 OK\r\nContent-Length: 0\r\n\r\n'],
    ['tab after status', 'HTTP/1.1 200\tOK\r\nContent-Length: 0\r\n\r\n'],
    ['leading CRLF', '\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'],
    ['control char in reason', 'HTTP/1.1 200 O\x01K\r\nContent-Length: 0\r\n\r\n'],
    ['bare LF line ends', 'HTTP/1.1 200 OK\nContent-Length: 0\n\n'],
    ['bare LF in one header line', 'HTTP/1.1 200 OK\r\nA: b\nContent-Length: 0\r\n\r\n'],
    ['bare CR', 'HTTP/1.1 200 OK\r\nA: b\rC: d\r\nContent-Length: 0\r\n\r\n'],
    ['obs-fold', 'HTTP/1.1 200 OK\r\nA: b\r\n  c\r\nContent-Length: 0\r\n\r\n'],
    ['obs-fold with tab', 'HTTP/1.1 200 OK\r\nA: b\r\n\tc\r\nContent-Length: 0\r\n\r\n'],
    ['space before colon', 'HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n'],
    ['no colon', 'HTTP/1.1 200 OK\r\nJunk\r\nContent-Length: 0\r\n\r\n'],
    ['empty name', 'HTTP/1.1 200 OK\r\n: x\r\nContent-Length: 0\r\n\r\n'],
    ['non-token name', 'HTTP/1.1 200 OK\r\nA(b): x\r\nContent-Length: 0\r\n\r\n'],
    ['NUL in value', 'HTTP/1.1 200 OK\r\nA: b\x00c\r\nContent-Length: 0\r\n\r\n'],
    ['DEL in value', 'HTTP/1.1 200 OK\r\nA: b\x7fc\r\nContent-Length: 0\r\n\r\n'],
    [
      '101 switching protocols',
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
    ],
  ])('rejects %s', (_name, text) => {
    expect(rejected(text)).toMatch(/invalid upstream response/);
  });

  it('refuses a bare LF or a non-HTTP start before the head is complete (no wait for a timeout)', () => {
    for (const text of ['HTTP/1.1 200 OK\nServer: x\n', 'SSH-2.0-OpenSSH_9\r\n', 'HTTP/2 200\r\n']) {
      const out = parseAllWays(text);
      expect(out.kind, text).toBe('error');
    }
  });

  it('bounds the head: maxHeaderBytes fits exactly, one more byte fails', () => {
    const base = 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Pad: \r\n\r\n';
    const pad = 'a'.repeat(200 - base.length);
    const exact = base.replace('X-Pad: ', 'X-Pad: ' + pad);
    expect(exact.length).toBe(200);
    const exactOut = run(Buffer.from(exact), [exact.length], { maxHeaderBytes: 200 });
    expect(exactOut.kind).toBe('response');
    expect(run(Buffer.from(exact), new Array<number>(200).fill(1), { maxHeaderBytes: 200 }).kind).toBe(
      'response',
    );
    const over = exact.replace('X-Pad: ', 'X-Pad: a');
    expect(run(Buffer.from(over), [over.length], { maxHeaderBytes: 200 }).kind).toBe('error');
    expect(run(Buffer.from(over), new Array<number>(201).fill(1), { maxHeaderBytes: 200 }).kind).toBe(
      'error',
    );
    // A head that never ends fails once it exceeds the limit, not at EOF.
    const endless = Buffer.from('HTTP/1.1 200 OK\r\nX: ' + 'a'.repeat(300));
    expect(run(endless, [150, 150, endless.length - 300], { maxHeaderBytes: 200 }).kind).toBe('error');
  });

  it('skips 1xx responses (their headers too) and delivers the final one', () => {
    const r = ok(
      'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx',
    );
    expect(r).toMatchObject({ status: 200, headers: ['Content-Length', '1'], body: 'x' });
  });
});

describe('ResponseParser: framing', () => {
  it('Content-Length: exact body, bytes after it are reported as extra', () => {
    const r = ok('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA');
    expect(r).toMatchObject({ body: 'hello', framed: true, keepAlive: true, extra: 5 });
  });

  it('Content-Length: 0, and no body for HEAD, 204 and 304 whatever the head says', () => {
    expect(ok('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n')).toMatchObject({ body: '', keepAlive: true });
    expect(ok('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n', { head: true })).toMatchObject({
      body: '',
      framed: true,
      keepAlive: true,
    });
    expect(ok('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', { head: true }).body).toBe('');
    expect(ok('HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\nabc')).toMatchObject({
      body: '',
      extra: 3,
    });
    expect(ok('HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n')).toMatchObject({
      body: '',
      extra: 0,
    });
  });

  it('Content-Length lists and repeats only when all equal', () => {
    expect(ok('HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc').body).toBe('abc');
    expect(ok('HTTP/1.1 200 OK\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\nabc').body).toBe('abc');
    expect(ok('HTTP/1.1 200 OK\r\nContent-Length: 003\r\n\r\nabc').body).toBe('abc');
    for (const v of ['3, 4', '3,', ',3', '-3', '+3', '0x3', '3 3', '3.0', '', 'abc', '9007199254740992']) {
      rejected(`HTTP/1.1 200 OK\r\nContent-Length: ${v}\r\n\r\nabc`);
    }
    rejected('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc');
  });

  it('no Content-Length and no Transfer-Encoding: the body runs to the close, no reuse', () => {
    const r = ok('HTTP/1.1 200 OK\r\nX: y\r\n\r\nall of this');
    expect(r).toMatchObject({ body: 'all of this', framed: false, keepAlive: false });
  });

  it('chunked: sizes in any case with leading zeros, extensions, trailers dropped', () => {
    const r = ok(
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n' +
        '5\r\nhello\r\n0A;name=val;x\r\n0123456789\r\n00a;q="a b"\t\r\n' +
        '\r\n'.repeat(5) +
        '\r\n0\r\nX-Trailer: t\r\n\r\n',
    );
    expect(r).toMatchObject({ body: 'hello0123456789' + '\r\n'.repeat(5), framed: true, keepAlive: true });
  });

  it('chunked: an empty last chunk with no trailers ends the body; bytes after it are extra', () => {
    expect(ok('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGARBAGE')).toMatchObject({
      body: '',
      extra: 7,
    });
  });

  it('chunked: data is delivered as it arrives, not held to the end of the chunk', () => {
    const chunks: string[] = [];
    const p = new ResponseParser(
      {
        onResponseHead: () => true,
        onResponseData: (c) => {
          chunks.push(c.toString());
          return true;
        },
      },
      16384,
    );
    p.reset(false);
    p.execute(Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabcd'));
    expect(chunks).toEqual(['abcd']);
    p.execute(Buffer.from('efgh'));
    expect(chunks).toEqual(['abcd', 'efgh']);
    p.execute(Buffer.from('ijklmnop\r\n0\r\n\r\n'));
    expect(p.done).toBe(true);
    expect(chunks.join('')).toBe('abcdefghijklmnop');
  });

  it('body chunks are views of the input, not copies', () => {
    const input = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody');
    let got: Buffer | null = null;
    const p = new ResponseParser(
      {
        onResponseHead: () => true,
        onResponseData: (c) => {
          got = c;
          return true;
        },
      },
      16384,
    );
    p.reset(false);
    p.execute(input);
    expect(got!.buffer).toBe(input.buffer);
  });

  it.each([
    ['an empty chunk size', '\r\nabc\r\n0\r\n\r\n'],
    ['a non-hex chunk size', 'g\r\nabc\r\n0\r\n\r\n'],
    ['a 0x prefix', '0x3\r\nabc\r\n0\r\n\r\n'],
    ['a negative size', '-3\r\nabc\r\n0\r\n\r\n'],
    ['a size with 17 digits', '00000000000000003\r\nabc\r\n0\r\n\r\n'],
    ['a size beyond 2^53', 'fffffffffffffff\r\nabc\r\n0\r\n\r\n'],
    ['a bare LF after the size', '3\nabc\r\n0\r\n\r\n'],
    ['a bare CR after the size', '3\rabc\r\n0\r\n\r\n'],
    ['whitespace then CRLF after the size', '3 \r\nabc\r\n0\r\n\r\n'],
    ['whitespace before an extension', '3 ;a=b\r\nabc\r\n0\r\n\r\n'],
    ['a control character in an extension', '3;a\x01b\r\nabc\r\n0\r\n\r\n'],
    ['data longer than its size', '3\r\nabcd\r\n0\r\n\r\n'],
    ['data not followed by CRLF', '3\r\nabcXY0\r\n\r\n'],
    ['data followed by a bare LF', '3\r\nabc\n0\r\n\r\n'],
    ['an obs-folded trailer', '0\r\nA: b\r\n c\r\n\r\n'],
    ['a trailer without colon', '0\r\nnonsense\r\n\r\n'],
    ['a trailer with a bare LF', '0\r\nA: b\n\r\n'],
    ['a NUL in a trailer', '0\r\nA: b\x00\r\n\r\n'],
  ])('chunked: rejects %s', (_name, body) => {
    rejected('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n' + body);
  });

  it('chunked: bounds trailers and extensions', () => {
    const big = '0\r\nX: ' + 'a'.repeat(300) + '\r\n\r\n';
    const r = run(Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n' + big), [400], {
      maxHeaderBytes: 256,
    });
    expect(r.kind).toBe('error');
    const ext = '3;' + 'e'.repeat(300) + '\r\nabc\r\n0\r\n\r\n';
    expect(
      run(Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n' + ext), [400], {
        maxHeaderBytes: 256,
      }).kind,
    ).toBe('error');
  });

  it('Transfer-Encoding: chunked last (over one or several fields) frames the body; other codings run to the close', () => {
    expect(
      ok('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n'),
    ).toMatchObject({
      body: 'z',
      framed: true,
    });
    expect(
      ok(
        'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: CHUNKED\r\n\r\n1\r\nz\r\n0\r\n\r\n',
      ),
    ).toMatchObject({ body: 'z', framed: true });
    expect(ok('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n1\r\nz')).toMatchObject({
      body: '1\r\nz',
      framed: false,
      keepAlive: false,
    });
  });

  it.each([
    ['CL and TE together', 'Content-Length: 3\r\nTransfer-Encoding: chunked'],
    ['TE and CL together', 'Transfer-Encoding: chunked\r\nContent-Length: 3'],
    ['chunked not last', 'Transfer-Encoding: chunked, gzip'],
    ['chunked twice', 'Transfer-Encoding: chunked, chunked'],
    ['chunked in two fields', 'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked'],
    ['chunked then another field', 'Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip'],
    ['a non-token coding', 'Transfer-Encoding: chun ked'],
    ['whitespace after chunked (llhttp: not chunked)', 'Transfer-Encoding: chunked\t'],
    ['whitespace after the value', 'Transfer-Encoding: gzip, chunked '],
    ['an empty element after chunked (llhttp: not chunked)', 'Transfer-Encoding: chunked,'],
    ['an empty element', 'Transfer-Encoding: gzip,,chunked'],
    ['parameters on chunked (llhttp: not chunked)', 'Transfer-Encoding: chunked;a=b'],
  ])('Transfer-Encoding: rejects %s', (_name, fields) => {
    rejected(`HTTP/1.1 200 OK\r\n${fields}\r\n\r\n3\r\nabc\r\n0\r\n\r\n`);
  });

  it('Transfer-Encoding in an HTTP/1.0 response is faulty framing (RFC 9112 §6.1)', () => {
    rejected('HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
  });
});

describe('ResponseParser: keep-alive', () => {
  it('HTTP/1.1 framed responses keep the connection; Connection: close (any case, in a list) does not', () => {
    expect(ok('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n').keepAlive).toBe(true);
    expect(ok('HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n').keepAlive).toBe(false);
    expect(ok('HTTP/1.1 200 OK\r\nConnection: x-foo, CLOSE \r\nContent-Length: 0\r\n\r\n').keepAlive).toBe(
      false,
    );
    expect(ok('HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n').keepAlive).toBe(true);
    expect(ok('HTTP/1.1 200 OK\r\nProxy-Connection: close\r\nContent-Length: 0\r\n\r\n').keepAlive).toBe(
      false,
    );
  });

  it('a Connection: close on a 1xx holds for the final response', () => {
    expect(
      ok('HTTP/1.1 103 Early Hints\r\nConnection: close\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n')
        .keepAlive,
    ).toBe(false);
  });

  it('HTTP/1.0 never keeps the connection (even with Connection: keep-alive)', () => {
    expect(ok('HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n').keepAlive).toBe(
      false,
    );
  });

  it('reads Keep-Alive: timeout=N', () => {
    expect(
      ok('HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5, max=100\r\nContent-Length: 0\r\n\r\n'),
    ).toMatchObject({
      keepAliveTimeoutMs: 5000,
    });
    expect(ok('HTTP/1.1 200 OK\r\nKeep-Alive: max=3\r\nContent-Length: 0\r\n\r\n').keepAliveTimeoutMs).toBe(
      -1,
    );
  });
});

describe('ResponseParser: pausing', () => {
  it('stops at a false return and continues from there', () => {
    const seen: string[] = [];
    let pause = true;
    const p = new ResponseParser(
      {
        onResponseHead: () => false,
        onResponseData: (c) => {
          seen.push(c.toString());
          return !pause;
        },
      },
      16384,
    );
    p.reset(false);
    const buf = Buffer.from(
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n',
    );
    let n = p.execute(buf);
    expect(p.paused).toBe(true);
    expect(seen).toEqual([]);
    p.paused = false;
    let rest = buf.subarray(n);
    n = p.execute(rest);
    expect(p.paused).toBe(true);
    expect(seen).toEqual(['ab']);
    p.paused = false;
    pause = false;
    rest = rest.subarray(n);
    n = p.execute(rest);
    expect(seen).toEqual(['ab', 'cd']);
    expect(p.done).toBe(true);
    expect(n).toBe(rest.length);
  });

  it('completes a Content-Length body on its last byte even if the consumer pauses there', () => {
    const p = new ResponseParser({ onResponseHead: () => true, onResponseData: () => false }, 16384);
    p.reset(false);
    p.execute(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nab'));
    expect(p.done).toBe(true);
  });

  it('halt() inside a callback stops the parser at once', () => {
    const p: ResponseParser = new ResponseParser(
      {
        onResponseHead: () => {
          p.halt();
          return true;
        },
        onResponseData: () => {
          throw new Error('no data after halt');
        },
      },
      16384,
    );
    p.reset(false);
    p.execute(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nab'));
    expect(p.done).toBe(false);
    expect(p.failed).toBe(false);
  });
});

describe('ResponseParser: EOF', () => {
  it('EOF mid-head, mid-Content-Length body or mid-chunked body leaves the response incomplete', () => {
    expect(run(Buffer.from('HTTP/1.1 200 OK\r\nContent'), [24])).toEqual({
      kind: 'incomplete',
      headSeen: false,
    });
    const cl = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc');
    expect(run(cl, [cl.length])).toEqual({ kind: 'incomplete', headSeen: true });
    const ch = Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n');
    expect(run(ch, [ch.length])).toEqual({ kind: 'incomplete', headSeen: true });
  });
});
