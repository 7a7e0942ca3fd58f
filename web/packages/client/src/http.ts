/** JSON calls to the HTTP API with a bearer token; one fresh token and one more try after a 401. */

import { SafelightError, errorFromBody, parseRetryAfter } from './errors.js';

/** Where tokens come from. `fresh` asks for a new one (after a 401 or before a reconnect). */
export type TokenProvider = (opts: { fresh: boolean }) => string | Promise<string>;

export interface HttpOptions {
  /** Base URL of the HTTP API (routes start with `/api/`), without a trailing slash. */
  apiUrl: string;
  getToken: TokenProvider;
  /** Defaults to the global `fetch`. */
  fetch?: typeof fetch;
}

/** A small JSON client of the API. */
export class Http {
  private readonly base: string;
  private readonly getToken: TokenProvider;
  private readonly fetchImpl: typeof fetch;

  constructor(opts: HttpOptions) {
    this.base = opts.apiUrl.replace(/\/+$/, '');
    this.getToken = opts.getToken;
    this.fetchImpl = opts.fetch ?? ((input, init) => globalThis.fetch(input, init));
  }

  /** Sends one request; answers the parsed JSON body of a 2xx or throws a [SafelightError]. */
  async json<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    let fresh = false;
    for (;;) {
      const token = await this.getToken({ fresh });
      let res: Response;
      try {
        res = await this.fetchImpl(this.base + path, {
          method,
          headers: {
            Authorization: `Bearer ${token}`,
            ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
          },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal,
        });
      } catch (e) {
        if (signal?.aborted) throw new SafelightError('aborted', 'the request was cancelled');
        throw new SafelightError('network', `no answer from the API: ${(e as Error).message}`);
      }
      if (res.status === 401 && !fresh) {
        fresh = true;
        continue;
      }
      const text = await res.text();
      let parsed: unknown = null;
      if (text) {
        try {
          parsed = JSON.parse(text);
        } catch {
          if (res.ok) throw new SafelightError('bad_response', `the API answered ${res.status} without JSON`, res.status);
        }
      }
      if (!res.ok) throw errorFromBody(res.status, parsed, parseRetryAfter(res.headers.get('retry-after')));
      return parsed as T;
    }
  }
}
