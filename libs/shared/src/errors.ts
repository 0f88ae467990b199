/**
 * Every error KeyPin answers with, in the contract's shape:
 * `{"error": {"message": "...", "type": "keypin_error", "code": "..."}}`.
 */
export const ERROR_CODES = {
  ambiguous_key: 400,
  invalid_key: 400,
  max_tokens_too_large: 400,
  bad_client_ip: 400,
  bad_request: 400,
  invalid_credentials: 401,
  proxy_token_required: 401,
  unauthorized: 401,
  key_banned: 403,
  ip_not_allowed: 403,
  forbidden: 403,
  model_not_allowed: 403,
  network_not_allowed: 403,
  network_denied: 403,
  first_use_not_allowed: 403,
  not_found: 404,
  no_route: 404,
  request_timeout: 408,
  already_bound: 409,
  would_unbind_all: 409,
  alert_not_open: 409,
  binding_banned: 409,
  conflict: 409,
  payload_too_large: 413,
  body_too_large: 413,
  uri_too_long: 414,
  headers_too_large: 431,
  validation_failed: 422,
  too_many_attempts: 429,
  too_many_new_keys: 429,
  too_many_concurrent_requests: 429,
  rate_limited: 429,
  quota_exceeded: 429,
  internal_error: 500,
  not_implemented: 501,
  bad_gateway: 502,
  binding_store_unavailable: 503,
  not_ready: 503,
  gateway_timeout: 504,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export const ERROR_TYPE = 'keypin_error';

export interface ErrorBody {
  error: { message: string; type: typeof ERROR_TYPE; code: ErrorCode };
}

export function errorBody(code: ErrorCode, message: string): ErrorBody {
  return { error: { message, type: ERROR_TYPE, code } };
}

export function statusOf(code: ErrorCode): number {
  return ERROR_CODES[code];
}
