import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { SafelightProvider } from '@safelight/react';
import { Gallery } from './Gallery';
import { ToastProvider } from './Toasts';
import { startSession } from './session';
import { renderFatal } from './fatal';
import './styles.css';

const root = createRoot(document.getElementById('root')!);
startSession('demo').then(
  (session) =>
    root.render(
      <StrictMode>
        <SafelightProvider client={session.client}>
          <ToastProvider>
            <Gallery session={session} />
          </ToastProvider>
        </SafelightProvider>
      </StrictMode>,
    ),
  (e: unknown) => renderFatal(root, e),
);
