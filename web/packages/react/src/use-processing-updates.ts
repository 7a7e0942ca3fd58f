/** `useProcessingUpdates`: live notices from the provider's feed. */

import { useCallback, useEffect, useSyncExternalStore } from 'react';
import type { ConnectionState, Notice } from '@safelight/client';
import { useSafelight } from './context.js';
import { useLatest } from './use-latest.js';

export interface ProcessingUpdates {
  /** The WebSocket's state. */
  connection: ConnectionState;
  /** The last notice applied. */
  lastNotice: Notice | null;
}

/**
 * Live notices: keeps the provider's one subscription to the page's WebSocket open while mounted
 * (any number of components may use this; the provider applies each notice to the image store
 * once and fetches fresh URLs when derivatives appear), and calls `onNotice` for each (e.g. toasts).
 */
export function useProcessingUpdates(onNotice?: (notice: Notice, info: { replayed: boolean }) => void): ProcessingUpdates {
  const { feed } = useSafelight();
  const handler = useLatest(onNotice);
  useEffect(() => feed.hold((notice, info) => handler.current?.(notice, info)), [feed, handler]);
  const snapshot = useSyncExternalStore(
    useCallback((onChange: () => void) => feed.subscribe(onChange), [feed]),
    () => feed.snapshot,
    () => feed.snapshot,
  );
  return { connection: snapshot.connection, lastNotice: snapshot.lastNotice };
}
