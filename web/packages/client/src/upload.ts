/**
 * Uploads: ask the API for a presigned request, then send the bytes straight to storage with
 * `XMLHttpRequest`, the one browser API that reports upload progress (fetch does not).
 */

import { SafelightError } from './errors.js';
import type { UploadTicket } from './types.js';

/** Progress of one file. `loaded`/`total` are bytes sent to storage. `waiting`: the API said the
 * owner is over a limit (429); the request is sent again after `retryInSecs`. */
export interface UploadProgress {
  phase: 'requesting' | 'waiting' | 'uploading' | 'stored';
  loaded: number;
  total: number;
  /** 0..1 */
  fraction: number;
  /** `waiting` only: seconds until the next try. */
  retryInSecs?: number;
}

/** The presigned request to use: `put` (headers signed) or `post` (a form policy). */
export type UploadMethod = 'put' | 'post';

/** The minimal surface of an `XMLHttpRequest` the upload uses (tests pass a fake). */
export interface XhrLike {
  open(method: string, url: string): void;
  setRequestHeader(name: string, value: string): void;
  send(body: Blob | FormData): void;
  abort(): void;
  readonly status: number;
  readonly responseText: string;
  readonly upload: { onprogress: ((ev: { loaded: number; total: number; lengthComputable: boolean }) => void) | null };
  onload: (() => void) | null;
  onerror: (() => void) | null;
  onabort: (() => void) | null;
}

const EXTENSION_TYPES: Record<string, string> = {
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
  gif: 'image/gif',
  avif: 'image/avif',
};

/** The file's declared type, or one guessed from its name (some platforms leave `type` empty). */
export function contentTypeOf(file: { name: string; type: string }): string {
  if (file.type) return file.type;
  const ext = file.name.toLowerCase().split('.').pop() ?? '';
  return EXTENSION_TYPES[ext] ?? 'application/octet-stream';
}

/** Headers a browser refuses to set by hand; the signed value is what it sends anyway. */
const FORBIDDEN_HEADERS = new Set(['content-length', 'host', 'connection']);

/** How a send ended: the bytes were stored, or storage already held this image's original. */
export type StorageOutcome = 'sent' | 'already_stored';

/**
 * Sends `file` to storage as `ticket` allows: PUT with the signed headers, or POST with the
 * policy's fields first and the file last. Resolves `sent` when storage answered 2xx, and
 * `already_stored` when a PUT is answered 412: the ticket's PUT is conditional (`If-None-Match:
 * *`), so 412 means the object is there already (the API handed out a new link to an image whose
 * bytes arrived meanwhile, e.g. the same photos dropped again while the first upload finished).
 */
export function sendToStorage(
  ticket: UploadTicket,
  file: Blob,
  opts: {
    method?: UploadMethod;
    onProgress?: (loaded: number, total: number) => void;
    signal?: AbortSignal;
    xhr?: () => XhrLike;
  } = {},
): Promise<StorageOutcome> {
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) {
      reject(new SafelightError('aborted', 'the upload was cancelled'));
      return;
    }
    const xhr = opts.xhr ? opts.xhr() : (new XMLHttpRequest() as unknown as XhrLike);
    const onAbort = () => xhr.abort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const done = () => opts.signal?.removeEventListener('abort', onAbort);
    xhr.upload.onprogress = (ev) => {
      if (ev.lengthComputable) opts.onProgress?.(ev.loaded, ev.total);
    };
    const put = (opts.method ?? 'put') !== 'post';
    xhr.onload = () => {
      done();
      if ((xhr.status >= 200 && xhr.status < 300) || (put && xhr.status === 412)) {
        opts.onProgress?.(file.size, file.size);
        resolve(xhr.status === 412 ? 'already_stored' : 'sent');
      } else {
        reject(new SafelightError('upload_failed', storageMessage(xhr.status, xhr.responseText), xhr.status));
      }
    };
    xhr.onerror = () => {
      done();
      reject(new SafelightError('network', 'the upload to storage failed (network or CORS)'));
    };
    xhr.onabort = () => {
      done();
      reject(new SafelightError('aborted', 'the upload was cancelled'));
    };
    if (!put) {
      const form = new FormData();
      for (const [k, v] of Object.entries(ticket.upload_post.fields)) form.append(k, v);
      form.append('file', file);
      xhr.open('POST', ticket.upload_post.url);
      xhr.send(form);
    } else {
      xhr.open(ticket.upload.method || 'PUT', ticket.upload.url);
      for (const [k, v] of Object.entries(ticket.upload.headers)) {
        if (!FORBIDDEN_HEADERS.has(k.toLowerCase())) xhr.setRequestHeader(k, v);
      }
      xhr.send(file);
    }
  });
}

/** S3 answers errors as XML `<Code>…</Code><Message>…</Message>`; keep what a person can read. */
function storageMessage(status: number, body: string): string {
  const code = /<Code>([^<]*)<\/Code>/.exec(body)?.[1];
  const message = /<Message>([^<]*)<\/Message>/.exec(body)?.[1];
  if (code || message) return `storage refused the upload (${status} ${code ?? ''}): ${message ?? ''}`.trim();
  return `storage refused the upload (${status})`;
}

/** Runs at most `limit` tasks at once, in the order they were queued. */
export class Limiter {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError('concurrency must be an integer >= 1');
  }

  /** How many tasks run now. */
  get active(): number {
    return this.running;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.limit) {
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
    this.running += 1;
    try {
      return await task();
    } finally {
      this.running -= 1;
      this.waiting.shift()?.();
    }
  }
}
