/**
 * The dashboard's data: `GET /api/admin/processing-queue` through the query cache, refreshed every
 * `refreshMs`, and its two actions (retry every failed image, reset a breaker) as mutations that
 * refresh it when they end.
 */

import { useEffect } from 'react';
import type { ProcessingQueue, SafelightClient, SafelightError } from '@safelight/client';
import { useSafelightClient } from '../context.js';
import { useMutation } from '../use-mutation.js';
import { useQuery } from '../use-query.js';

/** The action in flight: `retry-all` or `reset-<stage>`. */
export type DashboardAction = 'retry-all' | `reset-${string}`;

export interface ProcessingQueueData {
  /** The last answer; `null` before it and for someone who is not an admin. */
  data: ProcessingQueue | null;
  /** The last refresh's failure. */
  error: SafelightError | null;
  /** The API refused the caller (401/403). */
  denied: boolean;
  refresh: () => Promise<void>;
  retryAllFailed: () => void;
  resetCircuit: (stage: string) => void;
  busy: DashboardAction | null;
}

/** The most pages of `retry-all-failed` one click walks through. */
const MAX_PAGES = 50;

/** Walks `retry-all-failed` page by page; the totals re-queued and redriven. */
async function retryAllPages(client: SafelightClient): Promise<{ images: number; messages: number }> {
  let cursor: string | null = null;
  let images = 0;
  let messages = 0;
  for (let page = 0; page < MAX_PAGES; page++) {
    const r = await client.admin.retryAllFailed({ cursor });
    images += r.images_requeued;
    messages += r.messages_redriven;
    if (r.done || !r.next_cursor) break;
    cursor = r.next_cursor;
  }
  return { images, messages };
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

export function useProcessingQueue(opts: { refreshMs: number; onMessage?: (message: string, tone: 'info' | 'error') => void }): ProcessingQueueData {
  const { refreshMs, onMessage } = opts;
  const client = useSafelightClient();
  const query = useQuery('admin:processing-queue', (signal) => client.admin.processingQueue({ signal }));
  const { refetch } = query;

  useEffect(() => {
    if (!refreshMs) return;
    const t = setInterval(() => void refetch(), refreshMs);
    return () => clearInterval(t);
  }, [refetch, refreshMs]);

  const retryAll = useMutation(() => retryAllPages(client), {
    onSuccess: ({ images, messages }) => onMessage?.(`Re-queued ${plural(images, 'failed image')}, redrove ${plural(messages, 'message')}`, 'info'),
    onError: (e) => onMessage?.(`Retry all failed: ${e.message}`, 'error'),
    onSettled: () => void refetch(),
  });
  const reset = useMutation((stage: string) => client.admin.resetCircuit(stage), {
    onSuccess: (r) => onMessage?.(`The ${r.stage} breaker is ${r.state}`, 'info'),
    onError: (e, stage) => onMessage?.(`Reset ${stage}: ${e.message}`, 'error'),
    onSettled: () => void refetch(),
  });

  const denied = query.error?.status === 401 || query.error?.status === 403;
  const resetting = reset.pending[0];
  return {
    // Someone who is not an admin keeps nothing on screen.
    data: denied ? null : (query.data ?? null),
    error: query.error,
    denied,
    refresh: refetch,
    retryAllFailed: () => void retryAll.mutate(undefined),
    resetCircuit: (stage) => void reset.mutate(stage),
    busy: retryAll.pending.length > 0 ? 'retry-all' : resetting !== undefined ? `reset-${resetting}` : null,
  };
}
