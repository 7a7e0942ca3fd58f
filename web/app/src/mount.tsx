/** Starts a page: signs in, then renders `page` inside the provider and the toasts (or the fatal error). */

import { StrictMode, type ReactNode } from 'react';
import { createRoot } from 'react-dom/client';
import { SafelightProvider } from '@safelight/react';
import { ToastProvider } from './Toasts';
import { startSession, type Session } from './session';
import { renderFatal } from './fatal';
import './styles.css';

export function mountPage(defaultUser: 'demo' | 'admin', page: (session: Session) => ReactNode): void {
  const root = createRoot(document.getElementById('root')!);
  startSession(defaultUser).then(
    (session) =>
      root.render(
        <StrictMode>
          <SafelightProvider client={session.client}>
            <ToastProvider>{page(session)}</ToastProvider>
          </SafelightProvider>
        </StrictMode>,
      ),
    (e: unknown) => renderFatal(root, e),
  );
}
