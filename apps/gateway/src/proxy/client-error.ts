import type { Socket } from 'node:net';
import { sendSocketError } from './responses';

/**
 * Answers the HTTP parser's own refusals (malformed requests, oversized
 * headers, conflicting Content-Length/Transfer-Encoding …) in the
 * contract's error shape, then closes the connection.
 */
export function handleClientError(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  if (err.code === 'HPE_HEADER_OVERFLOW') {
    sendSocketError(socket, 'headers_too_large', 'The request headers are too large.');
  } else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    sendSocketError(socket, 'request_timeout', 'The request took too long to arrive.');
  } else {
    sendSocketError(socket, 'bad_request', 'The request is not valid HTTP.');
  }
  socket.destroySoon();
}
