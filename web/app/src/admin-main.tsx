import { ProcessingQueueDashboard } from '@safelight/react';
import { useToast } from './Toasts';
import { mountPage } from './mount';
import type { Session } from './session';

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

mountPage('admin', (session) => <Admin session={session} />);
