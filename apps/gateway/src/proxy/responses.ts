import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { type ErrorCode, errorBody, statusOf } from '@keypin/shared';
import { STATUS_CODES } from 'node:http';

/**
 * Writes an error in the contract's shape. `closeAfter` asks the client to
 * close the connection (used when a request body was not read);
 * `retryAfterSeconds` adds `Retry-After` (429s). Returns the body's bytes.
 */
export function sendError(
  res: ServerResponse,
  code: ErrorCode,
  message: string,
  closeAfter = false,
  retryAfterSeconds?: number,
  /** More headers, as flat lowercase name/value pairs (e.g. `x-ratelimit-*`). */
  extraHeaders?: readonly string[],
): number {
  if (res.headersSent || res.destroyed) return 0;
  const body = JSON.stringify(errorBody(code, message));
  const headers: Record<string, string | number> = {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  };
  if (closeAfter) headers['connection'] = 'close';
  if (retryAfterSeconds !== undefined) headers['retry-after'] = retryAfterSeconds;
  if (extraHeaders !== undefined) {
    for (let i = 0; i + 1 < extraHeaders.length; i += 2) headers[extraHeaders[i]!] = extraHeaders[i + 1]!;
  }
  res.writeHead(statusOf(code), headers);
  res.end(body);
  return headers['content-length'] as number;
}

/** The same, written raw on a socket (WebSocket upgrades have no ServerResponse). */
export function sendSocketError(
  socket: Socket,
  code: ErrorCode,
  message: string,
  retryAfterSeconds?: number,
  extraHeaders?: readonly string[],
): void {
  if (socket.destroyed) return;
  let extra = '';
  if (extraHeaders !== undefined) {
    for (let i = 0; i + 1 < extraHeaders.length; i += 2)
      extra += `${extraHeaders[i]}: ${extraHeaders[i + 1]}\r\n`;
  }
  const body = JSON.stringify(errorBody(code, message));
  const status = statusOf(code);
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n` +
      'Content-Type: application/json; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      'Cache-Control: no-store\r\n' +
      (retryAfterSeconds === undefined ? '' : `Retry-After: ${retryAfterSeconds}\r\n`) +
      extra +
      'Connection: close\r\n\r\n' +
      body,
  );
}
