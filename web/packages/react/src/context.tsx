/**
 * The provider: one client, one store of the page's images, one query cache and one live feed
 * (the WebSocket subscription) for the components below it.
 */

import { createContext, useContext, useMemo, type ReactNode } from 'react';
import { GalleryStore, type SafelightClient } from '@safelight/client';
import type { SafelightEnv } from './env.js';
import { LiveFeed } from './live-feed.js';
import { QueryCache } from './query-cache.js';

interface SafelightContextValue extends SafelightEnv {
  feed: LiveFeed;
}

const SafelightContext = createContext<SafelightContextValue | null>(null);

/** Makes `client` (and a store of the page's images) available to the hooks below. */
export function SafelightProvider({ client, store, children }: { client: SafelightClient; store?: GalleryStore; children: ReactNode }) {
  const value = useMemo(() => {
    const env: SafelightEnv = { client, store: store ?? new GalleryStore(), cache: new QueryCache() };
    return { ...env, feed: new LiveFeed(env) };
  }, [client, store]);
  return <SafelightContext.Provider value={value}>{children}</SafelightContext.Provider>;
}

/** Everything the nearest provider holds (the package's own hooks). */
export function useSafelight(): SafelightContextValue {
  const v = useContext(SafelightContext);
  if (!v) throw new Error('Safelight hooks need a <SafelightProvider client={…}> above them');
  return v;
}

/** What the nearest provider holds, or `null` outside one (hooks that also work without it). */
export function useOptionalSafelight(): SafelightContextValue | null {
  return useContext(SafelightContext);
}

/** The client of the nearest provider. */
export function useSafelightClient(): SafelightClient {
  return useSafelight().client;
}

/** The image store of the nearest provider. */
export function useGalleryStore(): GalleryStore {
  return useSafelight().store;
}

/** The query cache of the nearest provider. */
export function useQueryCache(): QueryCache {
  return useSafelight().cache;
}
