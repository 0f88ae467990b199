import type { IncomingMessage } from 'node:http';
import type { ErrorCode, Settings } from '@keypin/shared';
import type { BindingRule } from '../binding/binding.types';
import type { SettingsService } from '../settings/settings.service';
import { compilePolicy, type CompiledPolicy, firstRefusedModel } from './compiled-policy';
import type { Admission, Lease, PolicyLimiter } from './policy-limiter';
import { readBody } from './read-body';
import { addBodyFields, fieldsFromTarget } from './request-fields';

export type PolicyCheck =
  | {
      ok: true;
      lease: Lease | null;
      /** `x-ratelimit-*-requests` for the forwarded answer, or null. */
      headers: string[] | null;
      /** The body, when the policy had to read it (forward these bytes); else absent or null. */
      body?: Buffer | null;
    }
  | {
      ok: false;
      code: ErrorCode;
      message: string;
      retryAfter?: number;
      headers?: string[];
      /** Whether the request body was read to its end (the connection can then be kept); absent: not read. */
      bodyRead?: boolean;
    };

export interface PolicyGateOptions {
  /** POLICY_BODY_LIMIT: the largest body read for `models` / `max_tokens`. */
  bodyLimit: number;
  /** BODY_TIMEOUT_SECONDS, in ms (0 = never). */
  bodyTimeoutMs: number;
}

/**
 * The policy step of the decision (docs/contract.md 9), after the binding
 * allowed the request: the model and token cap when the policy names them
 * (reading the body only then), then the counters, in one Redis round trip.
 * Nothing refused here is forwarded, and nothing here is an intercept.
 */
export class PolicyGate {
  private defaultFrom: Settings | null = null;
  private defaultPolicy: CompiledPolicy | null = null;

  constructor(
    private readonly limiter: PolicyLimiter,
    private readonly settings: SettingsService,
    private readonly options: PolicyGateOptions,
  ) {}

  /** The policy that applies to a binding: its own, else the default (compiled once per settings change); null = none. */
  policyFor(rule: BindingRule): CompiledPolicy | null {
    const own = rule.ownPolicy;
    if (own !== null) return own.compiled;
    const s = this.settings.current;
    if (s !== this.defaultFrom) {
      this.defaultFrom = s;
      this.defaultPolicy = compilePolicy(s.default_policy, 'default');
    }
    return this.defaultPolicy;
  }

  /**
   * Checks one request against `p`. `hasBody`: the request carries a body
   * (never for a WebSocket handshake, whose model comes from the query).
   */
  check(p: CompiledPolicy, bindingId: number, req: IncomingMessage, hasBody: boolean): Promise<PolicyCheck> {
    return new Promise((resolve) => this.checkThen(p, bindingId, req, hasBody, resolve));
  }

  /**
   * The same, answering through a callback: a policy that only counts (the
   * common case) is one limiter call and no promise on the hot path.
   */
  checkThen(
    p: CompiledPolicy,
    bindingId: number,
    req: IncomingMessage,
    hasBody: boolean,
    done: (r: PolicyCheck) => void,
  ): void {
    if (!p.readsRequest) {
      this.limiter.admitThen(bindingId, p, done);
      return;
    }
    this.checkRequest(p, bindingId, req, hasBody).then(done, () =>
      done(refuse('internal_error', 'Internal error while checking the request against its policy.', false)),
    );
  }

  /** A policy with `models` or `max_tokens`: the request is looked into first. */
  private async checkRequest(
    p: CompiledPolicy,
    bindingId: number,
    req: IncomingMessage,
    hasBody: boolean,
  ): Promise<PolicyCheck> {
    let body: Buffer | null = null;
    const fields = fieldsFromTarget(req.url!);
    const h = scanPolicyHeaders(req.rawHeaders, fields.models);
    if (h !== null) return refuse('bad_request', h, false);
    if (hasBody) {
      const read = await readBody(req, this.options.bodyLimit, this.options.bodyTimeoutMs);
      if (read.kind === 'too_large') {
        return refuse(
          'body_too_large',
          `This API key's policy must read the request body, and bodies over ${this.options.bodyLimit} bytes ` +
            '(POLICY_BODY_LIMIT) cannot be checked.',
          false,
        );
      }
      if (read.kind === 'timeout') {
        return refuse('request_timeout', 'The request body stopped arriving.', false);
      }
      if (read.kind === 'aborted') return refuse('bad_request', 'The request body ended early.', false);
      body = read.body;
      const r = addBodyFields(fields, req.headers['content-type'], body);
      if (!r.ok) return refuse('bad_request', r.message, true);
    }
    const refused = firstRefusedModel(p, fields.models);
    if (refused !== null) {
      return refuse(
        'model_not_allowed',
        `The model "${printable(refused)}" is not allowed for this API key.`,
        true,
      );
    }
    if (p.maxTokens > 0) {
      for (const n of fields.maxTokens) {
        if (n > p.maxTokens) {
          return refuse(
            'max_tokens_too_large',
            `This request asks for ${n} output tokens; this API key allows at most ${p.maxTokens}.`,
            true,
          );
        }
      }
    }
    if (!p.counts) return { ok: true, lease: null, headers: null, body };
    return fromAdmission(await this.limiter.admit(bindingId, p), body, body !== null || !hasBody);
  }

  release(lease: Lease): void {
    this.limiter.release(lease);
  }
}

/**
 * The request headers a `models` / `max_tokens` policy must look at
 * (docs/policy-fields.md, "What is not read"): LiteLLM's `x-litellm-model`
 * names a model (added to `models`); a compressed body (New API and One API
 * decompress it, KeyPin would read the compressed bytes) and a repeated
 * Content-Type (Go reads the first, Starlette the last) cannot be judged.
 * Returns the refusal's message, or null.
 */
function scanPolicyHeaders(raw: readonly string[], models: string[]): string | null {
  let contentTypes = 0;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (name === 'x-litellm-model') {
      for (const part of raw[i + 1]!.split(',')) {
        const m = part.trim();
        if (m !== '' && !models.includes(m)) models.push(m);
      }
    } else if (name === 'content-type') {
      if (++contentTypes > 1) return "A request under this API key's policy may carry only one Content-Type.";
    } else if (name === 'content-encoding') {
      const v = raw[i + 1]!.trim().toLowerCase();
      if (v !== '' && v !== 'identity') {
        return "KeyPin cannot check a compressed request body under this API key's policy; send it uncompressed.";
      }
    }
  }
  return null;
}

/** The limiter's answer as the gate's. */
function fromAdmission(a: Admission, body: Buffer | null, bodyRead: boolean): PolicyCheck {
  if (a.ok) return { ok: true, lease: a.lease, headers: a.headers, body };
  return {
    ok: false,
    code: a.code,
    message: a.message,
    retryAfter: a.retryAfter,
    headers: a.headers,
    bodyRead,
  };
}

function refuse(code: ErrorCode, message: string, bodyRead: boolean): PolicyCheck {
  return { ok: false, code, message, bodyRead };
}

/** A model name for an error message: at most 100 characters, control characters shown as `?`. */
function printable(name: string): string {
  const cut = name.length > 100 ? `${name.slice(0, 100)}…` : name;
  return cut.replace(/[\p{Cc}\p{Cf}]/gu, '?');
}
