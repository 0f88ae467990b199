import { describe, expect, it } from 'vitest';
import {
  AnswerHeadReader,
  type AnswerHead,
  bodyEndFor,
  bodyFramingOf,
  ChunkedEnd,
  MAX_ANSWER_HEAD_BYTES,
  parseAnswerHead,
  refusalHead,
} from './upgrade-answer';

const b = (s: string) => Buffer.from(s, 'latin1');

function head(text: string): AnswerHead {
  const h = parseAnswerHead(b(text));
  if (typeof h === 'string') throw new Error(h);
  return h;
}

/** Feeds `body` split at every position into two reads; returns where each split said the body ended. */
function endsAcrossSplits(body: string): number[] {
  const out: number[] = [];
  for (let cut = 0; cut <= body.length; cut++) {
    const end = new ChunkedEnd();
    const first = end.feed(b(body.slice(0, cut)));
    if ('error' in first) throw new Error(first.error);
    if (first.done) {
      out.push(first.used);
      continue;
    }
    const second = end.feed(b(body.slice(cut)));
    if ('error' in second) throw new Error(`${second.error} (cut at ${cut})`);
    out.push(second.done ? cut + second.used : -1);
  }
  return out;
}

describe('AnswerHeadReader', () => {
  it('waits for the whole head, across reads and a split CRLFCRLF', () => {
    const r = new AnswerHeadReader();
    expect(r.push(b('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r'))).toEqual({
      kind: 'incomplete',
    });
    expect(r.push(b('\n\r'))).toEqual({ kind: 'incomplete' });
    const p = r.push(b('\n\x81\x02hi'));
    if (p.kind !== 'final') throw new Error(p.kind);
    expect(p.head.status).toBe(101);
    expect(p.head.fields).toEqual([['Upgrade', 'websocket']]);
    expect(p.head.raw.toString('latin1')).toBe(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n',
    );
    expect(p.rest.toString('latin1')).toBe('\x81\x02hi');
  });

  it('drops interim answers other than 101 and returns the final one', () => {
    const r = new AnswerHeadReader();
    const p = r.push(
      b(
        'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n',
      ),
    );
    expect(p.kind === 'final' && p.head.status).toBe(404);
  });

  it('refuses a head past the cap, interim heads included', () => {
    const r = new AnswerHeadReader();
    expect(r.push(b(`HTTP/1.1 200 OK\r\nX: ${'a'.repeat(MAX_ANSWER_HEAD_BYTES)}`)).kind).toBe('invalid');
    const interim = 'HTTP/1.1 100 Continue\r\n\r\n';
    const many = new AnswerHeadReader();
    expect(many.push(b(interim.repeat(Math.ceil(MAX_ANSWER_HEAD_BYTES / interim.length) + 1))).kind).toBe(
      'invalid',
    );
  });

  it.each([
    ['not HTTP', 'SSH-2.0-OpenSSH\r\n\r\n'],
    ['HTTP/2 status line', 'HTTP/2 200\r\n\r\n'],
    ['status out of range', 'HTTP/1.1 700 Odd\r\n\r\n'],
    ['obsolete folding', 'HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n'],
    ['space before colon', 'HTTP/1.1 200 OK\r\nX : a\r\n\r\n'],
    ['bare LF in a value', 'HTTP/1.1 200 OK\r\nX: a\nInjected: b\r\n\r\n'],
  ])('refuses a malformed head (%s)', (_why, text) => {
    expect(new AnswerHeadReader().push(b(text)).kind).toBe('invalid');
  });
});

describe('bodyFramingOf', () => {
  it.each([
    ['HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n', 'GET', { kind: 'length', length: 12 }],
    [
      'HTTP/1.1 200 OK\r\nContent-Length: 12\r\ncontent-length: 12\r\n\r\n',
      'GET',
      { kind: 'length', length: 12 },
    ],
    [
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n',
      'GET',
      { kind: 'chunked' },
    ],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n', 'GET', { kind: 'chunked' }],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n', 'GET', { kind: 'close' }],
    ['HTTP/1.1 200 OK\r\n\r\n', 'GET', { kind: 'close' }],
    ['HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n', 'GET', { kind: 'none' }],
    ['HTTP/1.1 304 Not Modified\r\n\r\n', 'GET', { kind: 'none' }],
    ['HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n', 'HEAD', { kind: 'none' }],
  ])('%j for %s', (text, method, framing) => {
    expect(bodyFramingOf(head(text), method)).toEqual(framing);
  });

  it.each([
    'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n',
    'HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\n',
    'HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n',
  ])('refuses an unusable Content-Length: %j', (text) => {
    expect(typeof bodyFramingOf(head(text), 'GET')).toBe('string');
  });
});

describe('refusalHead', () => {
  it('keeps the status and end-to-end fields, drops hop-by-hop ones and says Connection: close', () => {
    const h = head(
      'HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nConnection: keep-alive, X-Hop\r\n' +
        'Keep-Alive: timeout=5\r\nX-Hop: 1\r\nUpgrade: websocket\r\nX-Down: refused\r\nContent-Length: 2\r\n\r\n',
    );
    expect(refusalHead(h)).toBe(
      'HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nX-Down: refused\r\n' +
        'Content-Length: 2\r\nConnection: close\r\n\r\n',
    );
  });

  it('keeps the framing fields even when Connection names them, and drops Content-Length beside chunked', () => {
    const h = head(
      'HTTP/1.1 200 OK\r\nConnection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n',
    );
    expect(refusalHead(h)).toBe('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n');
  });
});

describe('body ends', () => {
  it('stops at the declared length', () => {
    const end = bodyEndFor({ kind: 'length', length: 5 });
    expect(end.feed(b('abc'))).toEqual({ used: 3, done: false });
    expect(end.feed(b('deGET / HTTP/1.1'))).toEqual({ used: 2, done: true });
    expect(bodyEndFor({ kind: 'none' }).feed(Buffer.alloc(0))).toEqual({ used: 0, done: true });
  });

  it('never ends a close-delimited body by itself', () => {
    expect(bodyEndFor({ kind: 'close' }).feed(b('abc'))).toEqual({ used: 3, done: false });
  });

  it('finds the end of a chunked body wherever the reads are split', () => {
    const body = '5\r\nhello\r\n7;ext="a b"\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n';
    const after = 'HTTP/1.1 200 OK\r\n\r\n';
    expect(new Set(endsAcrossSplits(body + after))).toEqual(new Set([body.length]));
  });

  it('finds the end of a chunked body without trailers fed in one read', () => {
    const end = new ChunkedEnd();
    expect(end.feed(b('3\r\nabc\r\n0\r\n\r\nleftover'))).toEqual({ used: 13, done: true });
  });

  it('skips large chunk data by arithmetic', () => {
    const end = new ChunkedEnd();
    expect(end.feed(b('100000\r\n'))).toEqual({ used: 8, done: false });
    expect(end.feed(Buffer.alloc(0x100000, 0x0d))).toEqual({ used: 0x100000, done: false });
    expect(end.feed(b('\r\n0\r\n\r\n'))).toEqual({ used: 7, done: true });
  });

  it.each([
    ['a bad size', 'zz\r\n'],
    ['data not followed by CRLF', '3\r\nabcX\r\n'],
    ['an endless size line', `${'1'.repeat(9000)}`],
  ])('refuses %s', (_why, text) => {
    expect('error' in new ChunkedEnd().feed(b(text))).toBe(true);
  });
});
