import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { ProcessingQueueDashboard, SafelightProvider } from '@safelight/react';
import { ToastProvider, useToast } from './Toasts';
import { startSession, type Session } from './session';
import { renderFatal } from './fatal';
import './styles.css';

function Admin({ session }: { session: Session }) {
  const toast = useToast();
  return (
    <>
      <header className="top">
        <h1>Safelight operations</h1>
        <p className="top__who">
          Signed in as <strong>{session.name}</strong> <span className="sl-muted">(dev token{session.admin ? ', admin' : ''})</span>
        </p>
        <nav>
          <a href="/">Gallery</a>
        </nav>
      </header>
      <main>
        <ProcessingQueueDashboard refreshMs={10_000} onMessage={(m, tone) => toast(m, tone === 'error' ? 'error' : 'info')} />
      </main>
    </>
  );
}

const root = createRoot(document.getElementById('root')!);
startSession('admin').then(
  (session) =>
    root.render(
      <StrictMode>
        <SafelightProvider client={session.client}>
          <ToastProvider>
            <Admin session={session} />
          </ToastProvider>
        </SafelightProvider>
      </StrictMode>,
    ),
  (e: unknown) => renderFatal(root, e),
);
