/** Test doubles: a scripted WebSocket and XMLHttpRequest. */
import type { Notice, SocketLike, XhrLike } from '@safelight/client';

export class FakeSocket implements SocketLike {
  static all: FakeSocket[] = [];
  readyState = 0;
  sent: unknown[] = [];
  closedWith: number | null = null;
  onopen: ((ev: unknown) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;

  constructor(readonly url: string) {
    FakeSocket.all.push(this);
  }

  static reset(): void {
    FakeSocket.all = [];
  }

  static last(): FakeSocket {
    const s = FakeSocket.all.at(-1);
    if (!s) throw new Error('no socket was opened');
    return s;
  }

  get token(): string | null {
    return new URL(this.url).searchParams.get('token');
  }

  send(data: string): void {
    this.sent.push(JSON.parse(data));
  }

  close(code = 1000): void {
    this.closedWith = code;
    this.readyState = 3;
  }

  /** The server accepts the connection. */
  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }

  /** The server sends a frame. */
  receive(frame: object): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }

  /** The connection drops (server gone, network lost). */
  drop(code = 1006): void {
    this.readyState = 3;
    this.onclose?.({ code, reason: '' });
  }
}

export function notice(seq: number, image = 'img-1', type: Notice['type'] = 'image:processing:thumbnail_complete', extra: Partial<Notice> = {}): Notice {
  const failed = type === 'image:processing:failed';
  const complete = type === 'image:processing:complete';
  return {
    type,
    image_id: image,
    seq,
    at: new Date(Date.UTC(2026, 10, 30, 12, 0, seq)).toISOString(),
    status: {
      processing_status: failed ? 'failed' : complete ? 'completed' : 'processing',
      thumbnail_status: failed ? 'failed' : 'completed',
      variant_status: complete ? 'completed' : 'processing',
      processing_error: failed ? 'not a decodable jpeg' : null,
      processing_attempts: 1,
      processing_started_at: null,
      processing_completed_at: null,
    },
    thumbnails: {},
    variants: {},
    placeholder: null,
    ...(failed ? { error: 'not a decodable jpeg', error_kind: 'permanent', retryable: false } : {}),
    ...extra,
  };
}

export class FakeXhr implements XhrLike {
  static all: FakeXhr[] = [];
  method = '';
  url = '';
  headers: Record<string, string> = {};
  body: Blob | FormData | null = null;
  status = 0;
  responseText = '';
  aborted = false;
  upload: XhrLike['upload'] = { onprogress: null };
  onload: (() => void) | null = null;
  onerror: (() => void) | null = null;
  onabort: (() => void) | null = null;

  constructor() {
    FakeXhr.all.push(this);
  }

  open(method: string, url: string): void {
    this.method = method;
    this.url = url;
  }
  setRequestHeader(name: string, value: string): void {
    this.headers[name] = value;
  }
  send(body: Blob | FormData): void {
    this.body = body;
  }
  abort(): void {
    this.aborted = true;
    this.onabort?.();
  }
  progress(loaded: number, total: number): void {
    this.upload.onprogress?.({ loaded, total, lengthComputable: true });
  }
  respond(status: number, text = ''): void {
    this.status = status;
    this.responseText = text;
    this.onload?.();
  }
}
