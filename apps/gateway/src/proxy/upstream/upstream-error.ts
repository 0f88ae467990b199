/**
 * The error codes the upstream client reports through `onError`. Connection
 * errors raised by the OS while connecting (ECONNREFUSED, EHOSTUNREACH, TLS
 * certificate errors …) keep their own code: they already say what happened.
 */
export type UpstreamErrorCode =
  /** The TCP (and TLS) connect did not finish within `connectTimeoutMs`. */
  | 'UPSTREAM_CONNECT_TIMEOUT'
  /** The response head did not arrive within `headersTimeoutMs`. */
  | 'UPSTREAM_HEADERS_TIMEOUT'
  /** The response body was silent longer than `bodyTimeoutMs`. */
  | 'UPSTREAM_BODY_TIMEOUT'
  /** The connection closed or was reset before the response was complete. */
  | 'UPSTREAM_SOCKET'
  /** The upstream sent something that is not a well-formed HTTP/1.x response. */
  | 'UPSTREAM_PARSE'
  /** The request body stream failed, or its length disagreed with Content-Length. */
  | 'UPSTREAM_REQUEST_BODY'
  /** The request could not be written safely (bad method, path or header): nothing was sent. */
  | 'UPSTREAM_INVALID_REQUEST'
  /** The pool was closed or destroyed. */
  | 'UPSTREAM_CLOSED'
  /** `abort()` was called without a reason of its own. */
  | 'UPSTREAM_ABORTED';

export class UpstreamError extends Error {
  constructor(
    readonly code: UpstreamErrorCode,
    message: string,
    cause?: unknown,
  ) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'UpstreamError';
  }
}
