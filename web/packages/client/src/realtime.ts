/**
 * Live notices over one WebSocket per page.
 *
 * - Connects with `?token=` (browsers cannot set headers on a WebSocket), asking for a fresh token
 *   on every reconnect, so an expired one never locks the page out.
 * - Reconnects after an unexpected close with exponential backoff and jitter.
 * - After a reconnect sends `{"action":"resume","since":<last applied seq>}`, so notices sent
 *   while the socket was down are replayed. A replay comes in pages: a page that ends with
 *   `{"type":"resume:more","after":A}` is followed by `resume` from `A`, until `resumed`.
 * - A refused handshake (`$connect` answering 429 for an owner with too many sockets, or 401) is
 *   seen by a browser only as a close before open: it is retried with the same growing backoff,
 *   never in a loop.
 * - Delivers each notice once: a replay and a live notice may overlap, so notices are deduplicated
 *   by `(image_id, seq)`.
 * - Pings to keep the socket open and treats a silent socket as dead.
 */

import type { TokenProvider } from './http.js';
import type { Notice, ServerFrame } from './types.js';

/** Where the page stands with the server. */
export type ConnectionState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

/** What subscribers hear. All members are optional. */
export interface RealtimeListener {
  /** A notice not seen before; `replayed` when it came in answer to a `resume`. */
  notice?(notice: Notice, info: { replayed: boolean }): void;
  state?(state: ConnectionState): void;
  /** The server finished a replay. */
  resumed?(frame: { since: number; replayed: number; last_seq: number }): void;
  /** An `error` frame from the server (a refused action; the socket stays). */
  error?(frame: { code: string; message?: string }): void;
}

/** The parts of the WebSocket API the client uses (tests pass a fake). */
export interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onclose: ((ev: { code: number; reason: string; wasClean?: boolean }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
}
export type SocketFactory = (url: string) => SocketLike;

/** Timers, injectable for tests. */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface RealtimeOptions {
  /** The WebSocket URL (`wss://…/stage`), without the token. */
  wsUrl: string;
  getToken: TokenProvider;
  /** Opens a socket; defaults to `new WebSocket(url)`. */
  socket?: SocketFactory;
  /** Reconnect delay: `min(capMs, baseMs * 2^(attempt-1))`, of which a random half is jitter. */
  backoff?: { baseMs?: number; capMs?: number };
  /** How often to ping an open socket (API Gateway closes idle sockets after 10 minutes). */
  pingIntervalMs?: number;
  /** A socket that stays silent this long after a ping is closed and reconnected. */
  pongTimeoutMs?: number;
  /** Resume from this seq on the first connection too (e.g. kept across page loads). */
  since?: number;
  random?: () => number;
  timers?: Timers;
  /** How many `(image, seq)` pairs to remember for deduplication. */
  dedupeWindow?: number;
}

const OPEN = 1;
/** Close code the client uses when it gives up on a silent socket (4000-4999: application). */
export const CLOSE_SILENT = 4000;

/** The delay before reconnect attempt `attempt` (1-based): half fixed, half random (equal jitter). */
export function backoffDelay(attempt: number, baseMs: number, capMs: number, random: () => number): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/** One WebSocket connection with reconnect, resume and dedupe, shared by any number of listeners. */
export class Realtime {
  private readonly opts: Required<Omit<RealtimeOptions, 'since' | 'backoff'>> & { baseMs: number; capMs: number };
  private readonly listeners = new Set<RealtimeListener>();
  private socket: SocketLike | null = null;
  private stateValue: ConnectionState = 'idle';
  private attempt = 0;
  private reconnectTimer: unknown = null;
  private pingTimer: unknown = null;
  private silenceTimer: unknown = null;
  private wanted = false;
  private connectedBefore = false;
  private lastSeqValue: number;
  private replaying = false;
  private readonly seen = new Set<string>();
  private connectSerial = 0;

  constructor(options: RealtimeOptions) {
    this.opts = {
      wsUrl: options.wsUrl,
      getToken: options.getToken,
      socket: options.socket ?? ((url) => new WebSocket(url) as unknown as SocketLike),
      baseMs: options.backoff?.baseMs ?? 500,
      capMs: options.backoff?.capMs ?? 30_000,
      pingIntervalMs: options.pingIntervalMs ?? 60_000,
      pongTimeoutMs: options.pongTimeoutMs ?? 10_000,
      random: options.random ?? Math.random,
      timers: options.timers ?? {
        setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
        clearTimeout: (h) => globalThis.clearTimeout(h as ReturnType<typeof setTimeout>),
      },
      dedupeWindow: options.dedupeWindow ?? 10_000,
    };
    this.lastSeqValue = options.since ?? 0;
    this.connectedBefore = options.since !== undefined;
  }

  /** The connection's state. */
  get state(): ConnectionState {
    return this.stateValue;
  }

  /** The highest seq applied so far (what a resume asks from). */
  get lastSeq(): number {
    return this.lastSeqValue;
  }

  /** Adds a listener and connects if this is the first one; returns the unsubscribe function. */
  subscribe(listener: RealtimeListener): () => void {
    this.listeners.add(listener);
    listener.state?.(this.stateValue);
    if (!this.wanted) this.start();
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) this.stop();
    };
  }

  /** Opens the connection (idempotent). */
  start(): void {
    if (this.wanted) return;
    this.wanted = true;
    void this.connect();
  }

  /** Closes the connection and stops reconnecting. */
  stop(): void {
    this.wanted = false;
    this.clearTimers();
    const s = this.socket;
    this.socket = null;
    this.connectSerial += 1;
    if (s) {
      s.onclose = null;
      s.onmessage = null;
      s.onerror = null;
      s.close(1000, 'client done');
    }
    this.setState('closed');
  }

  /** Reconnects now instead of waiting for the backoff (e.g. the browser came back online). */
  reconnectNow(): void {
    if (!this.wanted || this.stateValue === 'open' || this.stateValue === 'connecting') return;
    this.clearTimer('reconnectTimer');
    void this.connect();
  }

  private async connect(): Promise<void> {
    const serial = ++this.connectSerial;
    this.setState(this.connectedBefore ? 'reconnecting' : 'connecting');
    let token: string;
    try {
      token = await this.opts.getToken({ fresh: this.attempt > 0 || this.connectedBefore });
    } catch {
      if (serial === this.connectSerial && this.wanted) this.scheduleReconnect();
      return;
    }
    if (serial !== this.connectSerial || !this.wanted) return;
    const sep = this.opts.wsUrl.includes('?') ? '&' : '?';
    let socket: SocketLike;
    try {
      socket = this.opts.socket(`${this.opts.wsUrl}${sep}token=${encodeURIComponent(token)}`);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      if (this.socket !== socket) return;
      this.attempt = 0;
      this.setState('open');
      if (this.connectedBefore) {
        this.replaying = true;
        this.sendFrame({ action: 'resume', since: this.lastSeqValue });
      }
      this.connectedBefore = true;
      this.schedulePing();
    };
    socket.onmessage = (ev) => {
      if (this.socket !== socket) return;
      this.onFrame(ev.data);
    };
    socket.onerror = () => {
      /* a close follows; it decides */
    };
    socket.onclose = () => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.clearTimer('pingTimer');
      this.clearTimer('silenceTimer');
      this.replaying = false;
      if (this.wanted) this.scheduleReconnect();
    };
  }

  private onFrame(data: unknown): void {
    this.clearTimer('silenceTimer');
    if (typeof data !== 'string') return;
    let frame: ServerFrame;
    try {
      frame = JSON.parse(data) as ServerFrame;
    } catch {
      return;
    }
    switch (frame.type) {
      case 'pong':
        return;
      case 'resume:more':
        // Keep replaying: ask for the next page. A socket that dropped meanwhile resumes from
        // the last seq applied when it reconnects.
        if (typeof frame.after === 'number' && frame.after > frame.since) {
          this.sendFrame({ action: 'resume', since: frame.after });
        }
        return;
      case 'resumed':
        this.replaying = false;
        if (frame.last_seq > this.lastSeqValue) this.lastSeqValue = frame.last_seq;
        for (const l of this.listeners) l.resumed?.(frame);
        return;
      case 'error':
        for (const l of this.listeners) l.error?.(frame);
        return;
      default:
        if (typeof frame.type === 'string' && frame.type.startsWith('image:processing:')) this.onNotice(frame as Notice);
    }
  }

  private onNotice(notice: Notice): void {
    if (typeof notice.seq !== 'number' || typeof notice.image_id !== 'string') return;
    const key = `${notice.image_id}:${notice.seq}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    if (this.seen.size > this.opts.dedupeWindow) {
      const oldest = this.seen.values().next().value;
      if (oldest !== undefined) this.seen.delete(oldest);
    }
    if (notice.seq > this.lastSeqValue) this.lastSeqValue = notice.seq;
    for (const l of this.listeners) l.notice?.(notice, { replayed: this.replaying });
  }

  private sendFrame(frame: object): void {
    const s = this.socket;
    if (s && s.readyState === OPEN) s.send(JSON.stringify(frame));
  }

  private schedulePing(): void {
    this.clearTimer('pingTimer');
    this.pingTimer = this.opts.timers.setTimeout(() => {
      this.pingTimer = null;
      const s = this.socket;
      if (!s || s.readyState !== OPEN) return;
      this.sendFrame({ action: 'ping' });
      this.silenceTimer = this.opts.timers.setTimeout(() => {
        this.silenceTimer = null;
        if (this.socket === s) {
          // No pong: the socket is dead without knowing it. Drop it and reconnect.
          this.socket = null;
          s.onclose = null;
          s.close(CLOSE_SILENT, 'no pong');
          this.replaying = false;
          if (this.wanted) this.scheduleReconnect();
        }
      }, this.opts.pongTimeoutMs);
      this.schedulePing();
    }, this.opts.pingIntervalMs);
  }

  private scheduleReconnect(): void {
    this.clearTimer('reconnectTimer');
    this.attempt += 1;
    this.setState('reconnecting');
    const delay = backoffDelay(this.attempt, this.opts.baseMs, this.opts.capMs, this.opts.random);
    this.reconnectTimer = this.opts.timers.setTimeout(() => {
      this.reconnectTimer = null;
      if (this.wanted) void this.connect();
    }, delay);
  }

  private setState(state: ConnectionState): void {
    if (state === this.stateValue) return;
    this.stateValue = state;
    for (const l of this.listeners) l.state?.(state);
  }

  private clearTimer(name: 'reconnectTimer' | 'pingTimer' | 'silenceTimer'): void {
    const h = this[name];
    if (h !== null) {
      this.opts.timers.clearTimeout(h);
      this[name] = null;
    }
  }

  private clearTimers(): void {
    this.clearTimer('reconnectTimer');
    this.clearTimer('pingTimer');
    this.clearTimer('silenceTimer');
  }
}
