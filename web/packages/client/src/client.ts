/** `createClient`: the API, uploads and the page's one WebSocket behind one object. */

import { SafelightError, asSafelightError } from './errors.js';
import { Http, type TokenProvider } from './http.js';
import { Realtime, type RealtimeListener, type RealtimeOptions } from './realtime.js';
import type {
  CircuitReset,
  DuplicateUpload,
  ImageList,
  ImageView,
  ProcessingQueue,
  ProcessingStatus,
  RetryAccepted,
  RetryAllFailed,
  UploadTicket,
} from './types.js';
import { webCryptoHasher, type FileHasher } from './hash.js';
import { heicAsJpeg, isHeic, type HeicConverter } from './heic.js';
import { Limiter, contentTypeOf, sendToStorage, type UploadMethod, type UploadProgress, type XhrLike } from './upload.js';

export interface ClientOptions {
  /** Base URL of the HTTP API, e.g. `https://abc.execute-api.eu-west-1.amazonaws.com`. */
  apiUrl: string;
  /** The WebSocket URL, e.g. `wss://def.execute-api.eu-west-1.amazonaws.com/live`. */
  wsUrl: string;
  /** Access tokens; called with `fresh: true` after a 401 and before each reconnect. */
  getToken: TokenProvider;
  /** How many files upload at once (default 3). */
  concurrency?: number;
  /** The OAuth scope that makes a token an admin's (the deployment's `AdminScope`; default
   * `safelight/admin`). */
  adminScope?: string;
  /** `put` (default) or `post`: which presigned request of the ticket to use. */
  uploadMethod?: UploadMethod;
  fetch?: typeof fetch;
  xhr?: () => XhrLike;
  /** Options of the WebSocket (backoff, ping, test doubles). */
  realtime?: Omit<RealtimeOptions, 'wsUrl' | 'getToken'>;
  /** Converts HEIC files before upload; the browser's decoder and canvas by default. */
  convertHeic?: HeicConverter;
  /** SHA-256 of each file before upload (duplicate check, signed checksum); Web Crypto by default. */
  hasher?: FileHasher;
  /** After a 429 (an owner's limit), how often one upload request is sent again (default 5) and
   * the longest wait honoured (default 120 s; a longer `Retry-After` fails the upload at once). */
  rateLimit?: { retries?: number; maxWaitSecs?: number };
  /** Waits `ms` (aborted by `signal`); `setTimeout` by default (tests pass fake timers). */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** `setTimeout` as a promise that the signal rejects. */
function sleepFor(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new SafelightError('aborted', 'the upload was cancelled'));
      return;
    }
    const onAbort = () => {
      globalThis.clearTimeout(handle);
      reject(new SafelightError('aborted', 'the upload was cancelled'));
    };
    const handle = globalThis.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export interface UploadOptions {
  onProgress?: (progress: UploadProgress) => void;
  /** Called once the API has created the image row, before the bytes are sent, with the file
   * that is sent (a HEIC file's JPEG conversion). */
  onTicket?: (ticket: UploadTicket, sent: File) => void;
  signal?: AbortSignal;
  method?: UploadMethod;
}

/** What `upload` resolves to. */
export interface UploadResult {
  imageId: string;
  /** The presigned request the bytes went with; `null` for a duplicate (nothing was sent). */
  ticket: UploadTicket | null;
  /** What was uploaded: the file, or its JPEG conversion when it was HEIC. */
  file: File;
  /** The API's answer when the caller already had these bytes: `imageId` is that image's. */
  duplicate: DuplicateUpload | null;
  /** Storage already held the image's original (its conditional PUT answered 412): the image the
   * ticket names is one whose bytes arrived before, not a new one. */
  alreadyStored: boolean;
}

function isDuplicate(answer: UploadTicket | DuplicateUpload): answer is DuplicateUpload {
  return typeof (answer as DuplicateUpload).duplicate_of === 'string';
}

/** Pages of one WebSocket per URL, whichever client asks. */
const sockets = new Map<string, Realtime>();

/** The page's one [Realtime] for `wsUrl` (created on first use). */
export function sharedRealtime(options: RealtimeOptions): Realtime {
  let rt = sockets.get(options.wsUrl);
  if (!rt) {
    rt = new Realtime(options);
    sockets.set(options.wsUrl, rt);
  }
  return rt;
}

/** The client. */
export class SafelightClient {
  readonly http: Http;
  private readonly opts: ClientOptions;
  private readonly limiter: Limiter;
  /** HEIC conversions run one at a time (a decoded 12 MP photo holds ~48 MB). */
  private readonly converting = new Limiter(1);
  private readonly hash: FileHasher;
  private realtimeValue: Realtime | null = null;

  constructor(opts: ClientOptions) {
    if (!opts.apiUrl) throw new SafelightError('bad_config', 'apiUrl is required');
    if (!opts.wsUrl) throw new SafelightError('bad_config', 'wsUrl is required');
    this.opts = opts;
    this.http = new Http({ apiUrl: opts.apiUrl, getToken: opts.getToken, fetch: opts.fetch });
    this.limiter = new Limiter(opts.concurrency ?? 3);
    this.hash = opts.hasher ?? webCryptoHasher();
  }

  /** The page's shared WebSocket. */
  get realtime(): Realtime {
    if (!this.realtimeValue) {
      this.realtimeValue = sharedRealtime({ ...this.opts.realtime, wsUrl: this.opts.wsUrl, getToken: this.opts.getToken });
    }
    return this.realtimeValue;
  }

  /**
   * Uploads one file: hashes it, asks for a presigned request, then sends the bytes straight to
   * storage with progress. At most `concurrency` files are in flight; the others wait their turn
   * (`requesting` progress is reported when a file's turn comes). A HEIC file is converted to JPEG
   * first, or refused (`unsupported_heic`) before anything is sent when the browser cannot decode
   * it. When the caller already has these bytes the API answers with that image
   * (`duplicate_of`) and nothing is sent: the result's `duplicate` says so. An image still awaiting
   * these bytes gets a new link to the same image; when its bytes arrived meanwhile, storage
   * refuses the conditional PUT (412) and the result's `alreadyStored` says so: not an error.
   */
  async upload(file: File, opts: UploadOptions = {}): Promise<UploadResult> {
    const sent = (await isHeic(file)) ? await this.converting.run(() => heicAsJpeg(file, this.opts.convertHeic)) : file;
    return this.limiter.run(async () => {
      const report = (phase: UploadProgress['phase'], loaded: number) =>
        opts.onProgress?.({ phase, loaded, total: sent.size, fraction: sent.size ? loaded / sent.size : 1 });
      report('requesting', 0);
      const sha256 = await this.hash(sent);
      const body = { filename: sent.name, content_type: contentTypeOf(sent), size: sent.size, ...(sha256 ? { sha256 } : {}) };
      const answer = await this.withRetryAfter(
        () => this.http.json<UploadTicket | DuplicateUpload>('POST', '/api/images/upload', body, opts.signal),
        (secs) =>
          secs === null
            ? report('requesting', 0)
            : opts.onProgress?.({ phase: 'waiting', loaded: 0, total: sent.size, fraction: 0, retryInSecs: secs }),
        opts.signal,
      );
      if (isDuplicate(answer)) {
        report('stored', sent.size);
        return { imageId: answer.duplicate_of, ticket: null, file: sent, duplicate: answer, alreadyStored: false };
      }
      opts.onTicket?.(answer, sent);
      const outcome = await sendToStorage(answer, sent, {
        method: opts.method ?? this.opts.uploadMethod,
        signal: opts.signal,
        xhr: this.opts.xhr,
        onProgress: (loaded) => report('uploading', loaded),
      });
      report('stored', sent.size);
      return { imageId: answer.image_id, ticket: answer, file: sent, duplicate: null, alreadyStored: outcome === 'already_stored' };
    });
  }

  /**
   * Runs `call`; when the API answers 429 (the owner is over a limit: request rate, uploads
   * awaiting their bytes) it waits the answer's `Retry-After` (plus up to a second of jitter, so
   * a page's queued files do not all come back at once), telling `waiting` the seconds (and `null`
   * when it tries again), and calls again, up to
   * `rateLimit.retries` times. Any other error, a 429 without `Retry-After` or one asking for
   * longer than `rateLimit.maxWaitSecs`, is thrown as is.
   */
  private async withRetryAfter<T>(call: () => Promise<T>, waiting: (secs: number | null) => void, signal?: AbortSignal): Promise<T> {
    const retries = this.opts.rateLimit?.retries ?? 5;
    const maxWait = this.opts.rateLimit?.maxWaitSecs ?? 120;
    const sleep = this.opts.sleep ?? sleepFor;
    for (let attempt = 0; ; attempt += 1) {
      try {
        return await call();
      } catch (e) {
        const secs = e instanceof SafelightError && e.status === 429 ? e.retryAfterSecs : null;
        if (secs === null || secs > maxWait || attempt >= retries) throw e;
        waiting(secs);
        await sleep(secs * 1000 + Math.round(Math.random() * 1000), signal);
        waiting(null);
      }
    }
  }

  /** Uploads many files, `concurrency` at a time; one result (or error) per file, in order. */
  uploadMany(
    files: File[],
    opts: Omit<UploadOptions, 'onProgress' | 'onTicket'> & {
      onProgress?: (file: File, progress: UploadProgress) => void;
      onTicket?: (file: File, ticket: UploadTicket, sent: File) => void;
    } = {},
  ): Promise<PromiseSettledResult<UploadResult>[]> {
    return Promise.allSettled(
      files.map((file) =>
        this.upload(file, {
          signal: opts.signal,
          method: opts.method,
          onProgress: (p) => opts.onProgress?.(file, p),
          onTicket: (t, sent) => opts.onTicket?.(file, t, sent),
        }),
      ),
    );
  }

  /** `GET /api/images/{id}/processing-status`. */
  status(id: string, opts: { signal?: AbortSignal } = {}): Promise<ProcessingStatus> {
    return this.http.json('GET', `/api/images/${encodeURIComponent(id)}/processing-status`, undefined, opts.signal);
  }

  /** `GET /api/images/{id}`: the row with its download URLs. */
  get(id: string, opts: { signal?: AbortSignal } = {}): Promise<ImageView> {
    return this.http.json('GET', `/api/images/${encodeURIComponent(id)}`, undefined, opts.signal);
  }

  /** `POST /api/images/{id}/retry-processing` (409 `not_failed` unless failed). */
  retry(id: string): Promise<RetryAccepted> {
    return this.http.json('POST', `/api/images/${encodeURIComponent(id)}/retry-processing`);
  }

  /** `GET /api/images`: own images, newest first. */
  list(opts: { limit?: number; cursor?: string | null; signal?: AbortSignal } = {}): Promise<ImageList> {
    const q = new URLSearchParams();
    if (opts.limit !== undefined) q.set('limit', String(opts.limit));
    if (opts.cursor) q.set('cursor', opts.cursor);
    const qs = q.toString();
    return this.http.json('GET', `/api/images${qs ? `?${qs}` : ''}`, undefined, opts.signal);
  }

  /** Listens to live notices on the page's one WebSocket; returns the unsubscribe function. */
  subscribe(listener: RealtimeListener): () => void {
    return this.realtime.subscribe(listener);
  }

  /**
   * Runs an admin call. API Gateway itself refuses a token without the admin scope (the routes'
   * `AuthorizationScopes`), and a gateway refusal may carry no CORS headers, so a browser sees a
   * failed fetch instead of a 403. A failed fetch with a token that has no admin scope is that
   * refusal: it is reported as `forbidden` (403); with the scope it stays a network failure.
   */
  private async asAdmin<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (e) {
      const err = asSafelightError(e);
      if (err.code === 'network' && !(await this.tokenHasScope(this.opts.adminScope ?? 'safelight/admin'))) {
        throw new SafelightError('forbidden', 'this account is not an administrator', 403);
      }
      throw err;
    }
  }

  /** Whether the current access token grants `scope` (its `scope` string or `scp` list). */
  private async tokenHasScope(scope: string): Promise<boolean> {
    try {
      const token = await this.opts.getToken({ fresh: false });
      const payload = token.split('.')[1] ?? '';
      const json = atob(payload.replace(/-/g, '+').replace(/_/g, '/'));
      const claims = JSON.parse(json) as { scope?: unknown; scp?: unknown };
      const listed = typeof claims.scope === 'string' ? claims.scope.split(' ') : [];
      const scp = Array.isArray(claims.scp) ? claims.scp : [];
      return listed.includes(scope) || scp.includes(scope);
    } catch {
      // Not a readable JWT: assume it may grant it (the failure stays a network failure).
      return true;
    }
  }

  /** Admin routes (403 for anyone else). */
  readonly admin = {
    processingQueue: (opts: { signal?: AbortSignal } = {}): Promise<ProcessingQueue> =>
      this.asAdmin(() => this.http.json('GET', '/api/admin/processing-queue', undefined, opts.signal)),
    retryAllFailed: (opts: { dryRun?: boolean; cursor?: string | null } = {}): Promise<RetryAllFailed> =>
      this.asAdmin(() =>
        this.http.json('POST', '/api/admin/retry-all-failed', {
          ...(opts.dryRun ? { dry_run: true } : {}),
          ...(opts.cursor ? { cursor: opts.cursor } : {}),
        }),
      ),
    resetCircuit: (stage: string): Promise<CircuitReset> =>
      this.asAdmin(() => this.http.json('POST', `/api/admin/circuits/${encodeURIComponent(stage)}/reset`)),
  };
}

/** A client for one API and WebSocket. */
export function createClient(opts: ClientOptions): SafelightClient {
  return new SafelightClient(opts);
}
