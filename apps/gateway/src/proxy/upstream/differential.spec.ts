/**
 * Differential test: the upstream client against Node's own HTTP client
 * (llhttp 9, default strict mode), on the same response bytes written by a
 * raw TCP server. For every case both must accept (same status, reason,
 * headers and body) or both reject — except where this client deliberately
 * follows RFC 9112 / its own rules and Node does not: each such class is in
 * DELIBERATE with the reason, the hand-written cases name their class, and
 * every fuzz disagreement must be recognised as one of them by its bytes.
 */
import { request } from 'node:http';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UpstreamPool } from './http1-pool';
import { ResponseParser } from './response-parser';

type Outcome =
  | { kind: 'accepted'; status: number; statusText: string; headers: string[]; body: string }
  | { kind: 'rejected'; why: string };

interface Case {
  name: string;
  bytes: string;
  method?: 'GET' | 'HEAD';
  /** A DELIBERATE class: the outcomes differ, in that class's direction. */
  differs?: DeliberateClass;
}

type DeliberateClass = keyof typeof DELIBERATE;

/** Where this client and Node part ways on purpose. `pool`: what this client does. */
const DELIBERATE = {
  'cl-repeat': {
    pool: 'accepted',
    why:
      'Content-Length repeated or given as a list, every value equal: RFC 9110 §8.6 lets a recipient ' +
      'take it as that one value. llhttp refuses any repeat. (Unequal values: both refuse.)',
  },
  'cl-ows': {
    pool: 'accepted',
    why:
      'Whitespace around the Content-Length digits: RFC 9112 §5 strips OWS from every field value ' +
      'before it is interpreted; llhttp counts trailing whitespace as part of the number. Not a ' +
      'smuggling risk here: KeyPin re-frames the body for its client.',
  },
  'te-chunked-not-last': {
    pool: 'rejected',
    why:
      '`chunked` not the last transfer coding, or applied twice (RFC 9112 §6.1, §7: a sender MUST NOT). ' +
      'llhttp reads such a body to the close or decodes it anyway; a proxy should not guess where a ' +
      'body ends that its sender framed illegally.',
  },
  'te-invalid': {
    pool: 'rejected',
    why:
      'A Transfer-Encoding value that is not a clean list of codings (a non-token, an empty element, ' +
      'trailing whitespace, parameters on chunked). llhttp reads most of these as “not chunked” (to ' +
      'the close) but some as chunked ("chunked " yes, "chunked\\t" no): refusing them all leaves no ' +
      'value that the two would frame differently.',
  },
  'te-http10': {
    pool: 'rejected',
    why: 'Transfer-Encoding in an HTTP/1.0 response: RFC 9112 §6.1 says to treat the framing as faulty.',
  },
  version: {
    pool: 'rejected',
    why: 'A status line claiming HTTP/2.0: llhttp parses it as HTTP/1.x; this client speaks 1.0 and 1.1 only.',
  },
  'status-below-100': {
    pool: 'rejected',
    why:
      'A status code below 100 (RFC 9110 §15: 100–599). Node accepts 099, but its own ' +
      'ServerResponse.writeHead throws on it: relaying it would crash the forwarder.',
  },
  'status-101': {
    pool: 'rejected',
    why:
      'A 101 without an Upgrade field: this hop never asks to switch protocols, so any 101 is refused; ' +
      'Node, seeing no Upgrade, takes it as a final response without a body.',
  },
  'leading-crlf': {
    pool: 'rejected',
    why:
      'Empty lines before a status line (also after a 1xx): RFC 9112 §2.2 lets a server skip them before a request; ' +
      'a client has no such allowance, and bytes before a response mean the framing is already off.',
  },
  'reason-ctl': {
    pool: 'rejected',
    why:
      'A control character (or DEL) in the reason phrase: RFC 9112 §4 excludes them, llhttp does ' +
      'not check, and Node’s writeHead would throw ERR_INVALID_CHAR relaying it.',
  },
  'trailing-bytes': {
    pool: 'accepted',
    why:
      'Bytes after a complete response in the same read: Node parses them as the next response on ' +
      'the connection and fails the request when they are not one (so its verdict depends on packet ' +
      'timing). This client delivers the complete response and never reads or reuses the connection again.',
  },
  'chunk-ext-syntax': {
    pool: 'accepted',
    why:
      'A chunk extension that is not name[=token|quoted-string], or holds obs-text: tolerated (without ' +
      'CTLs) and discarded, as the brief asks; llhttp 9 checks their grammar. The size line still ends at ' +
      'its first CRLF for both, so where the chunk starts is not in question.',
  },
  'close-on-1xx': {
    pool: 'accepted',
    why:
      'Connection: close on a 1xx followed by the final response: llhttp refuses everything after the ' +
      '1xx; this client reads the final response the 1xx announced, and does not reuse the connection.',
  },
} as const;

let server: Server;
let port = 0;
/** What the server answers, by case number (the request path). */
const responses = new Map<number, Buffer>();
let nextId = 0;

beforeAll(async () => {
  server = createServer((socket: Socket) => {
    let head = '';
    socket.on('data', (d: Buffer) => {
      head += d.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      const id = Number(/^[A-Z]+ \/case\/(\d+) /.exec(head)?.[1]);
      socket.end(responses.get(id) ?? Buffer.alloc(0));
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
});

function nodeOutcome(id: number, method: string): Promise<Outcome> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (o: Outcome) => {
      if (settled) return;
      settled = true;
      resolve(o);
    };
    const req = request({ host: '127.0.0.1', port, path: `/case/${id}`, method, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        if (!res.complete) return done({ kind: 'rejected', why: 'incomplete' });
        done({
          kind: 'accepted',
          status: res.statusCode!,
          statusText: res.statusMessage ?? '',
          headers: res.rawHeaders,
          body: Buffer.concat(chunks).toString('latin1'),
        });
      });
      res.on('error', (e) => done({ kind: 'rejected', why: `res: ${e.message}` }));
    });
    req.on('error', (e: Error & { code?: string }) =>
      done({ kind: 'rejected', why: `${e.code}: ${e.message}` }),
    );
    // An unexpected 101 makes Node drop the socket without an error event.
    req.on('close', () =>
      setTimeout(() => done({ kind: 'rejected', why: 'closed without a response' }), 100),
    );
    req.setTimeout(3000, () => req.destroy(new Error('timeout')));
    req.end();
  });
}

async function poolOutcome(id: number, method: string): Promise<Outcome> {
  const pool = new UpstreamPool(`http://127.0.0.1:${port}`, {
    connectTimeoutMs: 3000,
    headersTimeoutMs: 3000,
    bodyTimeoutMs: 3000,
    keepAliveTimeoutMs: 30_000,
    maxConnections: 0,
  });
  try {
    return await new Promise<Outcome>((resolve) => {
      let status = 0;
      let statusText = '';
      let headers: string[] = [];
      const chunks: Buffer[] = [];
      let calls = 0;
      pool.dispatch(
        { method, path: `/case/${id}`, headers: [], body: null },
        {
          onConnect: () => undefined,
          onHeaders: (s, h, _resume, t) => {
            calls++;
            status = s;
            headers = h;
            statusText = t;
            return true;
          },
          onData: (c) => {
            chunks.push(Buffer.from(c));
            return true;
          },
          onComplete: () => {
            calls++;
            resolve({
              kind: 'accepted',
              status,
              statusText,
              headers,
              body: Buffer.concat(chunks).toString('latin1'),
            });
          },
          onError: (e) => {
            calls++;
            resolve({ kind: 'rejected', why: `${e.code}: ${e.message}` });
          },
        },
      );
      void calls;
    });
  } finally {
    await pool.destroy();
  }
}

async function compare(c: Case): Promise<{ node: Outcome; pool: Outcome }> {
  const id = nextId++;
  responses.set(id, Buffer.from(c.bytes, 'latin1'));
  const method = c.method ?? 'GET';
  const hang = (who: string) =>
    new Promise<Outcome>((r) => setTimeout(() => r({ kind: 'rejected', why: `HANG ${who}` }), 5000).unref());
  const [node, pool] = await Promise.all([
    Promise.race([nodeOutcome(id, method), hang('node')]),
    Promise.race([poolOutcome(id, method), hang('pool')]),
  ]);
  responses.delete(id);
  return { node, pool };
}

function same(a: Outcome, b: Outcome): boolean {
  if (a.kind === 'rejected' || b.kind === 'rejected') return a.kind === b.kind;
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Fixed, so a failure reproduces; override to explore (UPSTREAM_FUZZ_SEED=n UPSTREAM_FUZZ_CASES=n). */
const FUZZ_SEED = Number(process.env['UPSTREAM_FUZZ_SEED'] ?? 20240607);
const FUZZ_CASES = Number(process.env['UPSTREAM_FUZZ_CASES'] ?? 500);

const H = 'HTTP/1.1 200 OK\r\n';
const CHUNKED = 'Transfer-Encoding: chunked\r\n';

const CORPUS: Case[] = [
  { name: 'plain Content-Length', bytes: `${H}Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello` },
  {
    name: 'chunked with extensions and trailers',
    bytes: `${H}${CHUNKED}\r\n5;a=b\r\nhello\r\n0\r\nX-T: 1\r\n\r\n`,
  },
  { name: 'CL then TE', bytes: `${H}Content-Length: 5\r\n${CHUNKED}\r\n5\r\nhello\r\n0\r\n\r\n` },
  { name: 'TE then CL', bytes: `${H}${CHUNKED}Content-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n` },
  {
    name: 'duplicate equal CL',
    bytes: `${H}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello`,
    differs: 'cl-repeat',
  },
  { name: 'duplicate different CL', bytes: `${H}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!` },
  { name: 'CL list of equal values', bytes: `${H}Content-Length: 5, 5\r\n\r\nhello`, differs: 'cl-repeat' },
  { name: 'CL list of different values', bytes: `${H}Content-Length: 5, 6\r\n\r\nhello!` },
  {
    name: 'TE chunked, gzip',
    bytes: `${H}Transfer-Encoding: chunked, gzip\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    differs: 'te-chunked-not-last',
  },
  { name: 'TE gzip, chunked', bytes: `${H}Transfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n` },
  { name: 'TE gzip only (to the close)', bytes: `${H}Transfer-Encoding: gzip\r\n\r\nhello` },
  { name: 'TE identity', bytes: `${H}Transfer-Encoding: identity\r\n\r\nhello` },
  {
    name: 'TE chunked twice in one field',
    bytes: `${H}Transfer-Encoding: chunked, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    differs: 'te-chunked-not-last',
  },
  {
    name: 'TE chunked in two fields',
    bytes: `${H}${CHUNKED}${CHUNKED}\r\n5\r\nhello\r\n0\r\n\r\n`,
    differs: 'te-chunked-not-last',
  },
  { name: 'bare LF line ends', bytes: 'HTTP/1.1 200 OK\nContent-Length: 5\n\nhello' },
  { name: 'bare LF in one header line', bytes: `${H}X-A: b\nContent-Length: 5\r\n\r\nhello` },
  { name: 'bare CR in a header', bytes: `${H}X-A: b\rc\r\nContent-Length: 5\r\n\r\nhello` },
  { name: 'obs-fold', bytes: `${H}X-A: b\r\n c\r\nContent-Length: 5\r\n\r\nhello` },
  { name: 'space before colon', bytes: `${H}Content-Length : 5\r\n\r\nhello` },
  { name: 'space inside a name', bytes: `${H}X A: b\r\nContent-Length: 5\r\n\r\nhello` },
  { name: 'empty header name', bytes: `${H}: b\r\nContent-Length: 5\r\n\r\nhello` },
  { name: 'NUL in a value', bytes: `${H}X-A: b\x00c\r\nContent-Length: 5\r\n\r\nhello` },
  { name: 'obs-text in a value', bytes: `${H}X-A: caf\xe9\r\nContent-Length: 5\r\n\r\nhello` },
  { name: 'CL with OWS around', bytes: `${H}Content-Length: \t 5 \t\r\n\r\nhello`, differs: 'cl-ows' },
  { name: 'negative CL', bytes: `${H}Content-Length: -5\r\n\r\nhello` },
  { name: 'CL with a plus sign', bytes: `${H}Content-Length: +5\r\n\r\nhello` },
  { name: 'huge CL', bytes: `${H}Content-Length: 99999999999999999999\r\n\r\nhello` },
  { name: 'chunk size overflow', bytes: `${H}${CHUNKED}\r\nfffffffffffffffffff\r\nhello\r\n0\r\n\r\n` },
  { name: '0x chunk size', bytes: `${H}${CHUNKED}\r\n0x5\r\nhello\r\n0\r\n\r\n` },
  { name: 'empty chunk size', bytes: `${H}${CHUNKED}\r\n\r\nhello\r\n0\r\n\r\n` },
  { name: 'space after chunk size', bytes: `${H}${CHUNKED}\r\n5 \r\nhello\r\n0\r\n\r\n` },
  { name: 'chunk data not followed by CRLF', bytes: `${H}${CHUNKED}\r\n5\r\nhelloX\r\n0\r\n\r\n` },
  { name: 'chunked without last chunk (EOF)', bytes: `${H}${CHUNKED}\r\n5\r\nhello\r\n` },
  { name: 'CL body cut short (EOF)', bytes: `${H}Content-Length: 10\r\n\r\nhello` },
  { name: '100 Continue then 200', bytes: `HTTP/1.1 100 Continue\r\n\r\n${H}Content-Length: 5\r\n\r\nhello` },
  {
    name: '103 Early Hints then 200',
    bytes: `HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n${H}Content-Length: 5\r\n\r\nhello`,
  },
  {
    name: '204 with a body',
    bytes: 'HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello',
    differs: 'trailing-bytes',
  },
  { name: '304 with CL', bytes: 'HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n' },
  { name: 'HEAD with CL', bytes: `${H}Content-Length: 5\r\n\r\n`, method: 'HEAD' },
  { name: 'HEAD with chunked', bytes: `${H}${CHUNKED}\r\n`, method: 'HEAD' },
  { name: 'no framing: body to the close', bytes: `${H}X-A: b\r\n\r\nhello world` },
  { name: 'HTTP/1.0 with CL', bytes: 'HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello' },
  {
    name: 'HTTP/1.0 with chunked',
    bytes: `HTTP/1.0 200 OK\r\n${CHUNKED}\r\n5\r\nhello\r\n0\r\n\r\n`,
    differs: 'te-http10',
  },
  { name: 'no reason phrase', bytes: 'HTTP/1.1 200\r\nContent-Length: 5\r\n\r\nhello' },
  { name: 'empty reason phrase', bytes: 'HTTP/1.1 200 \r\nContent-Length: 5\r\n\r\nhello' },
  { name: 'tab in reason phrase', bytes: 'HTTP/1.1 200 O\tK\r\nContent-Length: 5\r\n\r\nhello' },
  { name: 'HTTP/2 preface', bytes: 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n' },
  {
    name: 'HTTP/2.0 status line',
    bytes: 'HTTP/2.0 200 OK\r\nContent-Length: 5\r\n\r\nhello',
    differs: 'version',
  },
  { name: 'HTTP/1.2', bytes: 'HTTP/1.2 200 OK\r\nContent-Length: 5\r\n\r\nhello' },
  {
    name: 'status 099',
    bytes: 'HTTP/1.1 099 Low\r\nContent-Length: 5\r\n\r\nhello',
    differs: 'status-below-100',
  },
  { name: 'status 1000', bytes: 'HTTP/1.1 1000 High\r\nContent-Length: 5\r\n\r\nhello' },
  {
    name: '101 Switching Protocols',
    bytes: 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n',
  },
  { name: '101 without Upgrade', bytes: 'HTTP/1.1 101 Switching Protocols\r\n\r\n', differs: 'status-101' },
  { name: 'leading CRLF', bytes: `\r\n${H}Content-Length: 5\r\n\r\nhello`, differs: 'leading-crlf' },
  { name: 'head over 16 KiB', bytes: `${H}X-Big: ${'a'.repeat(17_000)}\r\nContent-Length: 5\r\n\r\nhello` },
  { name: 'bytes after the response', bytes: `${H}Content-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\n\r\n` },
  { name: 'Connection: close', bytes: `${H}Connection: close\r\nContent-Length: 5\r\n\r\nhello` },
  { name: 'empty TE value', bytes: `${H}Transfer-Encoding: \r\n\r\nhello` },
  {
    name: 'TE chunked + tab',
    bytes: `${H}Transfer-Encoding: chunked\t\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    differs: 'te-invalid',
  },
  {
    name: 'TE chunked + comma',
    bytes: `${H}Transfer-Encoding: chunked,\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    differs: 'te-invalid',
  },
  {
    name: 'TE chunked with a parameter',
    bytes: `${H}Transfer-Encoding: chunked;a=b\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    differs: 'te-invalid',
  },
  {
    name: 'TE not a token',
    bytes: `${H}Transfer-Encoding: "gzip", chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    differs: 'te-invalid',
  },
  {
    name: 'DEL in the reason',
    bytes: 'HTTP/1.1 200 O\x7fK\r\nContent-Length: 5\r\n\r\nhello',
    differs: 'reason-ctl',
  },
  {
    name: 'Connection: close on a 100',
    bytes: `HTTP/1.1 100 Continue\r\nConnection: close\r\n\r\n${H}Content-Length: 5\r\n\r\nhello`,
    differs: 'close-on-1xx',
  },
  { name: 'space in the chunk size', bytes: `${H}${CHUNKED}\r\n5 ;a=b\r\nhello\r\n0\r\n\r\n` },
  {
    name: 'chunk extension with a space in its value',
    bytes: `${H}${CHUNKED}\r\n5;a= b\r\nhello\r\n0\r\n\r\n`,
    differs: 'chunk-ext-syntax',
  },
  { name: 'chunk extension without a name', bytes: `${H}${CHUNKED}\r\n5;=x\r\nhello\r\n0\r\n\r\n` },
  { name: 'chunk extension with a quoted value', bytes: `${H}${CHUNKED}\r\n5;a="b c"\r\nhello\r\n0\r\n\r\n` },
  { name: 'value with trailing spaces', bytes: `${H}X-A:   b  \r\nContent-Length: 5\r\n\r\nhello` },
  { name: 'tab before a header value', bytes: `${H}X-A:\tb\r\nContent-Length: 5\r\n\r\nhello` },
  { name: 'Content-Length: 0 then bytes', bytes: `${H}Content-Length: 0\r\n\r\n`, method: 'GET' },
];

/** A deterministic PRNG (mulberry32). */
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

const FUZZ_BASES = [
  `${H}Content-Type: application/json\r\nContent-Length: 11\r\nX-Request-Id: abc\r\n\r\n{"ok":true}`,
  `${H}Content-Type: text/event-stream\r\n${CHUNKED}\r\n7;e=1\r\ndata: 1\r\n6\r\n\n\ndone\r\n0\r\nX-T: v\r\n\r\n`,
  `HTTP/1.1 100 Continue\r\n\r\n${H}Content-Length: 3\r\n\r\nabc`,
  `${H}Server: x\r\n\r\nuntil the close`,
  'HTTP/1.1 204 No Content\r\nDate: now\r\n\r\n',
  'HTTP/1.0 404 Not Found\r\nContent-Length: 2\r\n\r\nno',
  `${H}Connection: close\r\nKeep-Alive: timeout=5\r\nContent-Length: 4\r\n\r\nbody`,
  `${H}${CHUNKED}\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n`,
];

const FUZZ_BYTES = [13, 10, 32, 9, 58, 44, 59, 48, 49, 97, 70, 0, 127, 0xe9, 45, 43, 34];
const FUZZ_LINES = [
  'Transfer-Encoding: chunked',
  'Content-Length: 0',
  'Content-Length: 3',
  'Transfer-Encoding: gzip',
  'Connection: close',
  ' folded',
  'X-Empty:',
  'Content-Length: 3, 3',
];

/** One to three random edits of a valid response. */
function mutate(base: string, rnd: () => number): string {
  let s = base;
  const edits = 1 + Math.floor(rnd() * 3);
  for (let e = 0; e < edits; e++) {
    const at = Math.floor(rnd() * (s.length + 1));
    switch (Math.floor(rnd() * 6)) {
      case 0:
        s =
          s.slice(0, at) +
          String.fromCharCode(FUZZ_BYTES[Math.floor(rnd() * FUZZ_BYTES.length)]!) +
          s.slice(at);
        break;
      case 1:
        s = s.slice(0, at) + s.slice(at + 1);
        break;
      case 2:
        s =
          s.slice(0, at) +
          String.fromCharCode(FUZZ_BYTES[Math.floor(rnd() * FUZZ_BYTES.length)]!) +
          s.slice(at + 1);
        break;
      case 3: {
        // Duplicate a line.
        const lines = s.split('\r\n');
        const i = Math.floor(rnd() * lines.length);
        lines.splice(i, 0, lines[i]!);
        s = lines.join('\r\n');
        break;
      }
      case 4: {
        // Insert a header line after the status line or another header line.
        const lines = s.split('\r\n');
        const headEnd = lines.indexOf('');
        const i = 1 + Math.floor(rnd() * Math.max(1, headEnd === -1 ? 1 : headEnd));
        lines.splice(i, 0, FUZZ_LINES[Math.floor(rnd() * FUZZ_LINES.length)]!);
        s = lines.join('\r\n');
        break;
      }
      default:
        s = s.slice(0, Math.max(1, at));
    }
  }
  return s;
}

/** The head's status line and fields, split leniently (for classifying fuzz cases, not for parsing). */
function roughHead(bytes: string): {
  statusLine: string;
  heads: { statusLine: string; fields: [string, string][] }[];
} {
  const heads: { statusLine: string; fields: [string, string][] }[] = [];
  let rest = bytes;
  for (;;) {
    const end = rest.indexOf('\r\n\r\n');
    const lines = (end === -1 ? rest : rest.slice(0, end)).split('\r\n');
    const fields = lines.slice(1).map((l): [string, string] => {
      const c = l.indexOf(':');
      return c === -1 ? [l, ''] : [l.slice(0, c), l.slice(c + 1)];
    });
    heads.push({ statusLine: lines[0]!, fields });
    // A 1xx (but 101) is followed by another head.
    if (end === -1 || !/^HTTP\/1\.[01] 1(?!01)\d\d/.test(lines[0]!) || end + 4 === rest.length) break;
    rest = rest.slice(end + 4);
  }
  return { statusLine: heads[heads.length - 1]!.statusLine, heads };
}

/** Bytes after the end of the response as this client frames it. */
function bytesAfterResponse(bytes: string, method: string): number {
  const buf = Buffer.from(bytes, 'latin1');
  const p = new ResponseParser({ onResponseHead: () => true, onResponseData: () => true }, 16 * 1024);
  p.reset(method === 'HEAD');
  const n = p.execute(buf);
  return p.done ? buf.length - n : 0;
}

/**
 * The DELIBERATE class explaining a disagreement, found from the bytes alone
 * (every head counts: a 1xx is parsed as strictly as the final response);
 * null if none does.
 */
function explain(c: Case, node: Outcome, pool: Outcome): DeliberateClass | null {
  const { heads } = roughHead(c.bytes);
  const named = (h: (typeof heads)[number], n: string) =>
    h.fields.filter(([k]) => k.toLowerCase() === n).map(([, v]) => v);
  if (pool.kind === 'accepted' && node.kind === 'rejected') {
    for (const h of heads) {
      const cl = named(h, 'content-length');
      if (cl.length > 1 || cl.some((v) => v.includes(','))) return 'cl-repeat';
      if (cl.some((v) => /^[ \t]*\d+[ \t]+$/.test(v))) return 'cl-ows';
    }
    if (heads.slice(0, -1).some((h) => named(h, 'connection').some((v) => /close/i.test(v))))
      return 'close-on-1xx';
    if (bytesAfterResponse(c.bytes, c.method ?? 'GET') > 0) return 'trailing-bytes';
    // Node names the cause; the bytes are a chunk-size line with ';'.
    if (/chunk extension/i.test(node.why)) return 'chunk-ext-syntax';
  }
  if (pool.kind === 'rejected' && node.kind === 'accepted') {
    if (c.bytes.startsWith('\r\n') || heads.some((h) => h.statusLine === '')) return 'leading-crlf';
    for (const h of heads) {
      const codings = named(h, 'transfer-encoding')
        .join(',')
        .split(',')
        .map((t) => t.trim().toLowerCase())
        .filter((t) => t !== '');
      const chunked = codings.filter((t) => t === 'chunked').length;
      if (chunked > 1 || (chunked === 1 && codings[codings.length - 1] !== 'chunked'))
        return 'te-chunked-not-last';
      const te = named(h, 'transfer-encoding');
      const tchar = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
      if (
        te.some(
          (v) =>
            /[ \t]$/.test(v) ||
            v
              .trim()
              .split(',')
              .some((e) => !tchar.test(e.split(';')[0]!.trim()) || /^\s*chunked\s*;/i.test(e)),
        )
      ) {
        return 'te-invalid';
      }
      if (h.statusLine.startsWith('HTTP/1.0 ') && codings.length > 0) return 'te-http10';
      if (/^HTTP\/(?!1\.[01] )/.test(h.statusLine)) return 'version';
      if (/^HTTP\/1\.[01] 0\d\d/.test(h.statusLine)) return 'status-below-100';
      if (/^HTTP\/1\.[01] 101/.test(h.statusLine)) return 'status-101';
      // eslint-disable-next-line no-control-regex
      if (/[\x00-\x08\x0a-\x1f\x7f]/.test(h.statusLine)) return 'reason-ctl';
    }
  }
  return null;
}

describe('differential: UpstreamPool vs node:http on the same bytes', () => {
  it.each(CORPUS.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const { node, pool } = await compare(c);
    if (c.differs === undefined) {
      expect(pool).toEqual(node.kind === 'rejected' ? { kind: 'rejected', why: expect.any(String) } : node);
    } else {
      expect(pool.kind, DELIBERATE[c.differs].why).toBe(DELIBERATE[c.differs].pool);
      expect(node.kind, 'Node is expected to differ here').not.toBe(pool.kind);
      expect(explain(c, node, pool)).toBe(c.differs);
    }
  });

  it('agrees on a seeded random mutation fuzz of valid responses, but for DELIBERATE classes', async () => {
    const rnd = prng(FUZZ_SEED);
    const unexplained: string[] = [];
    const seen = new Map<string, number>();
    let agreed = 0;
    const total = FUZZ_CASES;
    for (let i = 0; i < total; i++) {
      const c: Case = { name: `fuzz ${i}`, bytes: mutate(FUZZ_BASES[i % FUZZ_BASES.length]!, rnd) };
      const { node, pool } = await compare(c);
      if (same(node, pool)) {
        agreed++;
        continue;
      }
      const why = explain(c, node, pool);
      if (why === null) {
        unexplained.push(
          `${JSON.stringify(c.bytes)}\n  node: ${JSON.stringify(node)}\n  pool: ${JSON.stringify(pool)}`,
        );
      } else {
        seen.set(why, (seen.get(why) ?? 0) + 1);
      }
    }
    expect(unexplained, unexplained.join('\n')).toEqual([]);
    // Most mutations must be decided the same way, not explained away.
    expect(agreed).toBeGreaterThan(total * 0.9);
  }, 120_000);
});
