import type { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';

/**
 * Answering before the request body has been read (413 from a declared
 * `Content-Length`, or part-way through a chunked body) is only useful if
 * the client gets to read the answer. Closing a TCP connection with unread
 * input makes the kernel send a reset, and a client that is still sending
 * then sees ECONNRESET / EPIPE instead of the 413 (RFC 9112 §9.6, "the TCP
 * reset problem"). Node has no lingering close, so this module provides the
 * two ways out:
 *
 * - The client wants to keep the connection and declared a length we are
 *   willing to discard: keep it alive. Node reads and discards the rest of
 *   the body and the connection serves the next request.
 * - Otherwise the connection closes, in stages like nginx's lingering close:
 *   the answer is sent, our side is half-closed (FIN), the rest of the body
 *   is read and discarded, and only then (or after a time limit) is the
 *   socket destroyed.
 */

/** A declared body up to this size is read and discarded to keep the connection. */
const MAX_DRAIN_BYTES = 64 * 1024 * 1024;
/** A closing connection keeps discarding input for at most this long in all… */
const LINGER_TOTAL_MS = 30_000;
/** …and for at most this long without any input. */
const LINGER_IDLE_MS = 5_000;

/**
 * Whether an early answer to `req` (its body not read to the end) can keep
 * the connection: the client asked for keep-alive and declared a length we
 * are willing to read and discard. Otherwise the answer should close the
 * connection, with `lingerOnClose`.
 */
export function canDrainAndKeepAlive(req: IncomingMessage, res: ServerResponse): boolean {
  const header = req.headers['content-length'];
  const length = Number(header);
  return (
    header !== undefined && Number.isSafeInteger(length) && length <= MAX_DRAIN_BYTES && res.shouldKeepAlive
  );
}

type LingeringSocket = Socket & { keypinLingering?: true };

/**
 * Makes the close that follows the response to `req` a staged one: Node's
 * HTTP server calls the socket's `destroySoon` once a response that ends the
 * connection has been written; for this socket it half-closes instead, keeps
 * discarding input until the request body has been read (or the client hung
 * up, or a time limit passed), then destroys the socket.
 */
export function lingerOnClose(req: IncomingMessage): void {
  const socket = req.socket as LingeringSocket;
  if (socket.keypinLingering || req.complete) return;
  socket.keypinLingering = true;
  socket.destroySoon = function lingeringClose(this: Socket): void {
    if (this.destroyed) return;
    if (req.complete) {
      Socket.prototype.destroySoon.call(this);
      return;
    }
    this.end(); // FIN after the answer; keep reading (HTTP server sockets allow half-open)
    const stop = (): void => {
      clearTimeout(total);
      this.destroy();
    };
    const total = setTimeout(stop, LINGER_TOTAL_MS);
    total.unref();
    this.setTimeout(LINGER_IDLE_MS, stop);
    // Node's HTTP server is already discarding the body (it dumps an
    // unconsumed request when the response finishes): stop once all of it
    // has been read, or the client hung up.
    req.once('end', stop);
    this.once('end', stop);
    this.once('error', stop);
  };
}
