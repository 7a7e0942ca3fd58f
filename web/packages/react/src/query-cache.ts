/**
 * The provider's query cache: one entry per key holding `{status, data, error, fetching}`, at most
 * one fetch in flight per key (callers asking while it runs share it), and the fetch aborted
 * through its `AbortSignal` once every caller that can be cancelled has cancelled.
 */

import { SafelightError, asSafelightError } from '@safelight/client';

/** `pending` until a first answer; then the outcome of the last fetch that ended. */
export type QueryStatus = 'pending' | 'success' | 'error';

/** What an entry holds; the same object until something changes (for `useSyncExternalStore`). */
export interface QuerySnapshot<T> {
  status: QueryStatus;
  /** The last successful answer (kept when a later fetch fails). */
  data: T | undefined;
  /** The last fetch's failure; `null` after a success. */
  error: SafelightError | null;
  /** A fetch is in flight. */
  fetching: boolean;
}

/** Fetches a key's data; must stop (or at least be ignored) when `signal` aborts. */
export type Fetcher<T> = (signal: AbortSignal) => Promise<T>;

export interface FetchOptions {
  /** The caller's interest: when every caller's signal has aborted, the fetch is aborted. A
   * caller without a signal keeps the fetch running to its end. */
  signal?: AbortSignal;
  /** Needs an answer from a fetch that starts after this call (the data changed on the server):
   * a fetch in flight is not joined; one more runs after it (one, whoever asks), to its end. */
  fresh?: boolean;
}

interface Run {
  promise: Promise<unknown>;
  controller: AbortController;
  /** Callers whose signal has not aborted. */
  waiters: number;
  /** A caller without a signal joined: never abort. */
  pinned: boolean;
}

interface Entry {
  snapshot: QuerySnapshot<unknown>;
  listeners: Set<() => void>;
  run: Run | null;
  /** The fetch that starts when `run` ends (a `fresh` request made while it ran). */
  next: { promise: Promise<unknown>; start: () => void } | null;
}

const INITIAL: QuerySnapshot<never> = { status: 'pending', data: undefined, error: null, fetching: false };

/** A framework-free cache of keyed fetches. */
export class QueryCache {
  private readonly entries = new Map<string, Entry>();

  /** The key's state (a shared initial object for a key never fetched). */
  snapshot<T>(key: string): QuerySnapshot<T> {
    return (this.entries.get(key)?.snapshot ?? INITIAL) as QuerySnapshot<T>;
  }

  /** Calls `listener` after each change of the key's state; returns the unsubscribe function. */
  subscribe(key: string, listener: () => void): () => void {
    const entry = this.entry(key);
    entry.listeners.add(listener);
    return () => entry.listeners.delete(listener);
  }

  /**
   * The key's data from the fetch in flight, or from a new one of `fetcher`. Rejects with the
   * fetch's error (a [SafelightError]); an aborted fetch rejects and leaves the state as it was.
   */
  fetch<T>(key: string, fetcher: Fetcher<T>, opts: FetchOptions = {}): Promise<T> {
    const entry = this.entry(key);
    if (opts.fresh && entry.run) return this.queue(entry, fetcher as Fetcher<unknown>) as Promise<T>;
    const run = entry.run ?? this.start(entry, fetcher as Fetcher<unknown>);
    this.join(entry, run, opts.signal);
    return run.promise as Promise<T>;
  }

  /** A queued fetch serves a change the server made: it runs to its end whoever leaves. */
  private queue(entry: Entry, fetcher: Fetcher<unknown>): Promise<unknown> {
    if (!entry.next) {
      let start!: () => void;
      const promise = new Promise<void>((resolve) => (start = resolve)).then(() => {
        entry.next = null;
        const run = entry.run ?? this.start(entry, fetcher);
        run.pinned = true;
        return run.promise;
      });
      promise.catch(() => {});
      entry.next = { promise, start };
    }
    return entry.next.promise;
  }

  private start(entry: Entry, fetcher: Fetcher<unknown>): Run {
    const controller = new AbortController();
    const run: Run = { promise: Promise.resolve(), controller, waiters: 0, pinned: false };
    entry.run = run;
    this.set(entry, { fetching: true });
    run.promise = Promise.resolve()
      .then(() => fetcher(controller.signal))
      .then(
        (data) => {
          this.finish(entry, run, { status: 'success', data, error: null });
          return data;
        },
        (e: unknown) => {
          this.finish(entry, run, controller.signal.aborted ? {} : { status: 'error', error: asSafelightError(e) });
          throw controller.signal.aborted ? new SafelightError('aborted', 'the request was cancelled') : asSafelightError(e);
        },
      );
    run.promise.catch(() => {});
    return run;
  }

  private finish(entry: Entry, run: Run, change: Partial<QuerySnapshot<unknown>>): void {
    if (entry.run !== run) return;
    entry.run = null;
    this.set(entry, { ...change, fetching: false });
    entry.next?.start();
  }

  private join(entry: Entry, run: Run, signal: AbortSignal | undefined): void {
    if (!signal) {
      run.pinned = true;
      return;
    }
    run.waiters += 1;
    const leave = () => {
      run.waiters -= 1;
      // Checked after the current task's synchronous work: a caller that leaves and comes back
      // at once (React's StrictMode remount) finds the same fetch still running.
      queueMicrotask(() => {
        if (run.waiters > 0 || run.pinned) return;
        run.controller.abort();
        this.finish(entry, run, {});
      });
    };
    if (signal.aborted) leave();
    else signal.addEventListener('abort', leave, { once: true });
  }

  private entry(key: string): Entry {
    let entry = this.entries.get(key);
    if (!entry) {
      entry = { snapshot: INITIAL, listeners: new Set(), run: null, next: null };
      this.entries.set(key, entry);
    }
    return entry;
  }

  private set(entry: Entry, change: Partial<QuerySnapshot<unknown>>): void {
    entry.snapshot = { ...entry.snapshot, ...change };
    for (const l of [...entry.listeners]) l();
  }
}
