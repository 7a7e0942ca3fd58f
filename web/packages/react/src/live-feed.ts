/**
 * The provider's live notices: one subscription to the page's WebSocket while any component
 * wants it (however many), applying each notice to the store once and fetching fresh URLs when
 * derivatives appear.
 */

import type { ConnectionState, Notice } from '@safelight/client';
import { refreshImage, type SafelightEnv } from './env.js';

/** Notices that bring new derivatives, after which the image's URLs are fetched. */
const BRINGS_FILES = new Set<Notice['type']>(['image:processing:thumbnail_complete', 'image:processing:complete']);

/** What components read: the socket's state and the last notice applied. */
export interface LiveSnapshot {
  connection: ConnectionState;
  lastNotice: Notice | null;
}

export type NoticeListener = (notice: Notice, info: { replayed: boolean }) => void;

export class LiveFeed {
  private snapshotValue: LiveSnapshot;
  private readonly listeners = new Set<() => void>();
  private readonly noticeListeners = new Set<NoticeListener>();
  private holders = 0;
  private unsubscribe: (() => void) | null = null;

  constructor(private readonly env: SafelightEnv) {
    this.snapshotValue = { connection: env.client.realtime.state, lastNotice: null };
  }

  /** The same object until something changes (for `useSyncExternalStore`). */
  get snapshot(): LiveSnapshot {
    return this.snapshotValue;
  }

  /** Calls `listener` after each change of the snapshot; returns the unsubscribe function. */
  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Keeps the socket subscribed until the returned function is called (the last release
   * unsubscribes); `onNotice` hears each notice after the store has applied it.
   */
  hold(onNotice?: NoticeListener): () => void {
    if (onNotice) this.noticeListeners.add(onNotice);
    this.holders += 1;
    if (this.holders === 1) {
      this.unsubscribe = this.env.client.subscribe({
        state: (connection) => this.set({ connection }),
        notice: (notice, info) => this.apply(notice, info),
      });
    }
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      if (onNotice) this.noticeListeners.delete(onNotice);
      this.holders -= 1;
      if (this.holders === 0) {
        this.unsubscribe?.();
        this.unsubscribe = null;
      }
    };
  }

  private apply(notice: Notice, info: { replayed: boolean }): void {
    this.env.store.applyNotice(notice);
    this.set({ lastNotice: notice });
    for (const l of [...this.noticeListeners]) l(notice, info);
    if (BRINGS_FILES.has(notice.type)) {
      refreshImage(this.env, notice.image_id, { fresh: true }).catch(() => {
        /* the URLs come with the next notice or list; the badge is already right */
      });
    }
  }

  private set(change: Partial<LiveSnapshot>): void {
    this.snapshotValue = { ...this.snapshotValue, ...change };
    for (const l of [...this.listeners]) l();
  }
}
