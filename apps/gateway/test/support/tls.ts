/**
 * A throwaway certificate authority and one server certificate it signed,
 * made with the openssl command line (Node can make keys but not X.509
 * certificates). For nginx's TLS listener in the tests: clients trust `caPem`
 * and nothing else, so a handshake that succeeds proves nginx served this
 * very pair. Also small HTTPS clients (HTTP/1.1 and HTTP/2) that bind the
 * client socket to a chosen 127.0.0.N, like `send` in http-client.ts.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import {
  type ClientHttp2Session,
  connect as http2Connect,
  type SecureClientSessionOptions,
} from 'node:http2';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import type { Reply } from './http-client';

const OPENSSL = ['/usr/bin/openssl', '/usr/local/bin/openssl'].find((p) => existsSync(p)) ?? 'openssl';

/** The names the server certificate is valid for. */
export const TLS_HOST = 'keypin.test';
export const TLS_SANS = ['DNS:keypin.test', 'DNS:localhost', 'IP:127.0.0.1'];

export interface TestPki {
  /** The CA certificate (PEM): what clients trust. */
  caPem: string;
  /** The server's certificate (PEM), signed by the CA, for TLS_SANS. */
  certPem: string;
  /** The server's private key (PEM). */
  keyPem: string;
}

const CONFIG = `
[req]
distinguished_name = dn
prompt = no
[dn]
CN = KeyPin throwaway test CA
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = ${TLS_SANS.join(', ')}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
`;

let cached: TestPki | undefined;

/** The process's test CA and server pair (made once, valid for two days). */
export function testPki(): TestPki {
  if (cached) return cached;
  const dir = mkdtempSync(join(tmpdir(), 'keypin-pki-'));
  const run = (args: string[]) => {
    try {
      execFileSync(OPENSSL, args, { cwd: dir, stdio: 'pipe', timeout: 20_000 });
    } catch (err) {
      const e = err as Error & { stderr?: Buffer; code?: string };
      if (e.code === 'ENOENT') {
        throw new Error(
          'openssl is missing: the TLS tests make their CA with it (apt-get install -y openssl)',
        );
      }
      throw new Error(`openssl ${args[0]} failed:\n${e.stderr?.toString() ?? e.message}`);
    }
  };
  try {
    writeFileSync(join(dir, 'openssl.cnf'), CONFIG);
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    run([
      ...['req', '-x509', '-config', 'openssl.cnf', '-extensions', 'ca_ext', ...ec],
      ...['-days', '2', '-keyout', 'ca.key', '-out', 'ca.crt'],
    ]);
    run([
      ...['req', '-new', '-config', 'openssl.cnf', ...ec, '-subj', `/CN=${TLS_HOST}`],
      ...['-keyout', 'server.key', '-out', 'server.csr'],
    ]);
    run([
      ...[
        'x509',
        '-req',
        '-in',
        'server.csr',
        '-CA',
        'ca.crt',
        '-CAkey',
        'ca.key',
        '-set_serial',
        '0x4b6579',
      ],
      ...['-days', '2', '-extfile', 'openssl.cnf', '-extensions', 'server_ext', '-out', 'server.crt'],
    ]);
    cached = {
      caPem: readFileSync(join(dir, 'ca.crt'), 'utf8'),
      certPem: readFileSync(join(dir, 'server.crt'), 'utf8'),
      keyPem: readFileSync(join(dir, 'server.key'), 'utf8'),
    };
    return cached;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Writes the server pair as nginx/keypin.conf expects it: <dir>/fullchain.pem and <dir>/privkey.pem. */
export function writeServerPair(dir: string, pki: TestPki = testPki()): void {
  writeFileSync(join(dir, 'fullchain.pem'), pki.certPem);
  writeFileSync(join(dir, 'privkey.pem'), pki.keyPem);
  chmodSync(join(dir, 'privkey.pem'), 0o600);
}

// ------------------------------------------------------------------ clients

export interface TlsReply extends Reply {
  /** The body as bytes. */
  raw: Buffer;
  /** Header names and values as sent (HTTP/1.1), or as received (HTTP/2). */
  rawHeaders: string[];
  /** ALPN result: 'h2' or 'http/1.1'. */
  alpn: string | false | null;
  /** e.g. 'TLSv1.3'. */
  tlsVersion: string | null;
}

export interface TlsRequestOptions {
  /** The CA to trust (and nothing else). */
  ca: string;
  method?: string;
  /** Source address of the client socket (127.0.0.N). */
  from?: string;
  /** Header list; an array of [name, value] pairs may repeat names (HTTP/1.1). */
  headers?: Record<string, string> | [string, string][];
  body?: string | Buffer;
  /** SNI and the name the certificate must match; default keypin.test. */
  servername?: string;
}

function reply(
  status: number,
  headers: IncomingHttpHeaders,
  rawHeaders: string[],
  raw: Buffer,
  socket: TLSSocket | undefined,
): TlsReply {
  const body = raw.toString('utf8');
  return {
    status,
    headers,
    rawHeaders,
    raw,
    body,
    json: <T>() => JSON.parse(body) as T,
    alpn: socket?.alpnProtocol ?? null,
    tlsVersion: socket?.getProtocol() ?? null,
  };
}

/** One HTTPS request over HTTP/1.1 (ALPN offers only http/1.1) on a fresh connection. */
export function sendTls(url: string, opts: TlsRequestOptions): Promise<TlsReply> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const headers: Record<string, string | string[]> = {};
    const pairs = Array.isArray(opts.headers) ? opts.headers : Object.entries(opts.headers ?? {});
    for (const [k, v] of pairs) {
      const cur = headers[k];
      headers[k] = cur === undefined ? v : Array.isArray(cur) ? [...cur, v] : [cur, v];
    }
    // ALPN and the source address are passed on to tls.connect / net.connect
    // (Node's request types do not list them).
    const options: RequestOptions & { ALPNProtocols: string[] } = {
      host: u.hostname,
      port: u.port,
      path: u.pathname + u.search,
      method: opts.method ?? 'GET',
      localAddress: opts.from,
      agent: false,
      ca: opts.ca,
      servername: opts.servername ?? TLS_HOST,
      ALPNProtocols: ['http/1.1'],
      headers,
    };
    const req = httpsRequest(options);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve(
          reply(
            res.statusCode ?? 0,
            res.headers,
            res.rawHeaders,
            Buffer.concat(chunks),
            res.socket as TLSSocket,
          ),
        ),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** An HTTP/2 session to `origin` (ALPN offers only h2), trusting `ca`, from `from`. */
export function connectH2(
  origin: string,
  opts: { ca: string; from?: string; servername?: string },
): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const options: SecureClientSessionOptions & { localAddress?: string } = {
      ca: opts.ca,
      servername: opts.servername ?? TLS_HOST,
      localAddress: opts.from,
      ALPNProtocols: ['h2'],
    };
    const session = http2Connect(origin, options);
    session.once('connect', () => {
      session.off('error', reject);
      resolve(session);
    });
    session.once('error', reject);
  });
}

/** One request over a fresh HTTP/2 session; the session is closed afterwards. */
export async function sendH2(url: string, opts: TlsRequestOptions): Promise<TlsReply> {
  const u = new URL(url);
  const session = await connectH2(u.origin, opts);
  try {
    return await new Promise<TlsReply>((resolve, reject) => {
      const pairs = Array.isArray(opts.headers) ? opts.headers : Object.entries(opts.headers ?? {});
      const req = session.request({
        ':method': opts.method ?? 'GET',
        ':path': u.pathname + u.search,
        ...Object.fromEntries(pairs),
      });
      let status = 0;
      let headers: IncomingHttpHeaders = {};
      const rawHeaders: string[] = [];
      req.on('response', (h) => {
        status = Number(h[':status']);
        headers = {};
        for (const [k, v] of Object.entries(h)) {
          if (k.startsWith(':')) continue;
          headers[k] = v;
          for (const one of Array.isArray(v) ? v : [v]) rawHeaders.push(k, String(one));
        }
      });
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () =>
        resolve(reply(status, headers, rawHeaders, Buffer.concat(chunks), session.socket as TLSSocket)),
      );
      req.on('error', reject);
      req.end(opts.body);
    });
  } finally {
    session.close();
  }
}
