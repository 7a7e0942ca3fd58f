/** Test doubles: a scripted WebSocket and XMLHttpRequest. */
import type { ImageView, Notice, SocketLike, XhrLike } from '@safelight/client';

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

/** `GET /api/images/{id}` of a completed 4000 x 3000 JPEG with the default derivatives, whose URLs `url(name)` makes. */
export function completedView(id: string, url: (name: string) => string, extra: Partial<ImageView> = {}): ImageView {
  const der = (name: string, width: number, height: number, format: string, bytes: number) => ({ url: url(name), width, height, format, bytes });
  return {
    image_id: id, filename: `${id}.jpg`, content_type: 'image/jpeg', byte_size: 3_000_000, width: 4000, height: 3000, upload_state: 'stored',
    processing_status: 'completed', thumbnail_status: 'completed', variant_status: 'completed', processing_error: null, processing_attempts: 1,
    processing_started_at: null, processing_completed_at: null, error_kind: null, placeholder: null,
    created_at: '2026-11-30T12:00:00Z', updated_at: '2026-11-30T12:00:05Z', original_url: url('original'),
    thumbnails: { '150.jpg': der('150.jpg', 150, 113, 'jpeg', 5_000), '300.jpg': der('300.jpg', 300, 225, 'jpeg', 15_000), '600.jpg': der('600.jpg', 600, 450, 'jpeg', 45_000) },
    variants: {
      '1280.jpg': der('1280.jpg', 1280, 960, 'jpeg', 90_000), '1280.webp': der('1280.webp', 1280, 960, 'webp', 60_000),
      '2048.jpg': der('2048.jpg', 2048, 1536, 'jpeg', 200_000), '2048.webp': der('2048.webp', 2048, 1536, 'webp', 140_000),
    },
    ...extra,
  };
}
