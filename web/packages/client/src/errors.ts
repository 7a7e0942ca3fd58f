/** Errors the client raises: the API's `{"error": {"code", "message"}}` plus the client's own. */

/** A failed call. `code` is the API's machine code or one of the client's own (see below). */
export class SafelightError extends Error {
  /** The API's code (`unsupported_type`, `too_large`, `not_found`, …) or the client's:
   * `network` (no answer), `upload_failed` (storage refused the bytes), `aborted`,
   * `bad_response` (an answer that is not the contract's JSON). */
  readonly code: string;
  /** HTTP status, 0 when there was no answer. */
  readonly status: number;

  constructor(code: string, message: string, status = 0) {
    super(message);
    this.name = 'SafelightError';
    this.code = code;
    this.status = status;
  }
}

/** Reads an API error body, or describes the answer when it is not one. */
export function errorFromBody(status: number, body: unknown): SafelightError {
  const err = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  if (err && typeof err.code === 'string') {
    return new SafelightError(err.code, typeof err.message === 'string' ? err.message : err.code, status);
  }
  // API Gateway's own refusals carry `{"message": ...}`: 401 from the JWT authorizer, 403 from a
  // route's AuthorizationScopes (the admin routes). Same codes as the functions' refusals.
  const code = status === 401 ? 'unauthorized' : status === 403 ? 'forbidden' : 'http_error';
  return new SafelightError(code, `the API answered ${status}`, status);
}

/** `e` as a [SafelightError] (code `unknown` when something else was thrown). */
export function asSafelightError(e: unknown): SafelightError {
  return e instanceof SafelightError ? e : new SafelightError('unknown', e instanceof Error ? e.message : String(e));
}
