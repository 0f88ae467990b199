import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException } from '@nestjs/common';
import { type ErrorCode, errorBody, ERROR_CODES } from '@keypin/shared';
import type { FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import { canDrainAndKeepAlive, lingerOnClose } from './unread-body';

/** A failure with a contract error code, thrown by any domain. */
export class KeypinError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly extra?: Record<string, unknown>,
  ) {
    super(message);
  }
}

const FALLBACK_CODES: Record<number, ErrorCode> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  409: 'conflict',
  413: 'payload_too_large',
  422: 'validation_failed',
  429: 'too_many_attempts',
};

/** Fastify's messages for a JSON body it could not parse (FST_ERR_CTP_INVALID_JSON_BODY / _EMPTY_JSON_BODY). */
const BAD_JSON_MESSAGES = [
  /^Body is not valid JSON/,
  /^Body cannot be empty when content-type is set to 'application\/json'/,
];

function isBadJsonBody(e: HttpException): boolean {
  return e.getStatus() === 400 && BAD_JSON_MESSAGES.some((re) => re.test(e.message));
}

/**
 * Turns every error into the contract's body. Unknown errors become a
 * logged 500 with nothing internal in the answer.
 */
@Catch()
export class AllExceptionsFilter implements ExceptionFilter {
  constructor(private readonly logger: Logger) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const reply = host.switchToHttp().getResponse<FastifyReply>();
    let status = 500;
    let body: object;
    if (exception instanceof KeypinError) {
      status = ERROR_CODES[exception.code];
      body = { ...errorBody(exception.code, exception.message), ...(exception.extra ?? {}) };
    } else if (exception instanceof HttpException && isBadJsonBody(exception)) {
      // Fastify's JSON parser failed (Nest hands it on as a plain 400):
      // invalid input like any other, 422 naming the field (the whole body).
      status = 422;
      body = { ...errorBody('validation_failed', 'Invalid body: must be valid JSON'), field: 'body' };
    } else if (exception instanceof HttpException) {
      status = exception.getStatus();
      const code = FALLBACK_CODES[status] ?? (status >= 500 ? 'internal_error' : 'bad_request');
      const message = status === 404 ? 'Not found.' : exception.message;
      body = errorBody(code, message);
    } else {
      const fst = exception as { statusCode?: number; code?: string; message?: string };
      if (typeof fst.statusCode === 'number' && fst.statusCode >= 400 && fst.statusCode < 500) {
        // Fastify's own client errors (bad JSON, body too large …).
        status = fst.statusCode;
        body = errorBody(FALLBACK_CODES[status] ?? 'bad_request', fst.message ?? 'Bad request.');
      } else {
        this.logger.error(
          { err: exception instanceof Error ? exception.stack : String(exception) },
          'unhandled error',
        );
        body = errorBody('internal_error', 'Internal error.');
      }
    }
    // Answered before the body was read (413, or a parser error mid-body):
    // make sure the client gets to read the answer (see unread-body.ts).
    const req = reply.request.raw;
    if (!req.complete) {
      if (canDrainAndKeepAlive(req, reply.raw)) {
        reply.removeHeader('connection'); // Fastify's `close`: Node discards the rest instead
      } else {
        reply.header('connection', 'close');
        lingerOnClose(req);
      }
    }
    void reply.status(status).header('cache-control', 'no-store').send(body);
  }
}
