/** The provider: one client and one image store for the components below it. */

import { createContext, useContext, useMemo, type ReactNode } from 'react';
import { GalleryStore, type SafelightClient } from '@safelight/client';

interface SafelightContextValue {
  client: SafelightClient;
  store: GalleryStore;
}

const SafelightContext = createContext<SafelightContextValue | null>(null);

/** Makes `client` (and a store of the page's images) available to the hooks below. */
export function SafelightProvider({ client, store, children }: { client: SafelightClient; store?: GalleryStore; children: ReactNode }) {
  const value = useMemo(() => ({ client, store: store ?? new GalleryStore() }), [client, store]);
  return <SafelightContext.Provider value={value}>{children}</SafelightContext.Provider>;
}

function useSafelight(): SafelightContextValue {
  const v = useContext(SafelightContext);
  if (!v) throw new Error('Safelight hooks need a <SafelightProvider client={…}> above them');
  return v;
}

/** The client of the nearest provider. */
export function useSafelightClient(): SafelightClient {
  return useSafelight().client;
}

/** The image store of the nearest provider. */
export function useGalleryStore(): GalleryStore {
  return useSafelight().store;
}
