import type { Root } from 'react-dom/client';

/** What the page shows when it cannot start (no stack, no token). */
export function renderFatal(root: Root, e: unknown) {
  const message = e instanceof Error ? e.message : String(e);
  root.render(
    <main className="fatal">
      <h1>Safelight</h1>
      <p role="alert" className="sl-alert">
        The page could not start: {message}
      </p>
    </main>,
  );
}
