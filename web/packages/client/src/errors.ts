/** Errors the client raises: the API's `{"error": {"code", "message"}}` plus the client's own. */

/** A failed call. `code` is the API's machine code or one of the client's own (see below). */
export class SafelightError extends Error {
  /** The API's code (`unsupported_type`, `too_large`, `not_found`, …) or the client's:
   * `network` (no answer), `upload_failed` (storage refused the bytes), `aborted`,
   * `bad_response` (an answer that is not the contract's JSON). */
  readonly code: string;
  /** HTTP status, 0 when there was no answer. */
  readonly status: number;
  /** Seconds to wait before trying again: the `Retry-After` of a 429 (or 503), else `null`. */
  readonly retryAfterSecs: number | null;

  constructor(code: string, message: string, status = 0, retryAfterSecs: number | null = null) {
    super(message);
    this.name = 'SafelightError';
    this.code = code;
    this.status = status;
    this.retryAfterSecs = retryAfterSecs;
  }
}

/** A `Retry-After` header's seconds: a number of seconds or an HTTP date; `null` when absent or unreadable. */
export function parseRetryAfter(value: string | null | undefined, now: number = Date.now()): number | null {
  if (!value) return null;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - now) / 1000));
}

/** Reads an API error body, or describes the answer when it is not one. */
export function errorFromBody(status: number, body: unknown, retryAfterSecs: number | null = null): SafelightError {
  const err = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  if (err && typeof err.code === 'string') {
    return new SafelightError(err.code, typeof err.message === 'string' ? err.message : err.code, status, retryAfterSecs);
  }
  // API Gateway's own refusals carry `{"message": ...}`: 401 from the JWT authorizer, 403 from a
  // route's AuthorizationScopes (the admin routes). Same codes as the functions' refusals.
  const code = status === 401 ? 'unauthorized' : status === 403 ? 'forbidden' : 'http_error';
  return new SafelightError(code, `the API answered ${status}`, status, retryAfterSecs);
}

/** `e` as a [SafelightError] (code `unknown` when something else was thrown). */
export function asSafelightError(e: unknown): SafelightError {
  return e instanceof SafelightError ? e : new SafelightError('unknown', e instanceof Error ? e.message : String(e));
}
