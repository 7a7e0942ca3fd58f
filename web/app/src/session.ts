/**
 * Signing the demo user in: the local stack's issuer serves this page, `/config.json` (API and
 * WebSocket URLs) and dev tokens at `/dev/token`, all from one origin. `?user=demo|other|admin`
 * or `?sub=<anyone>` picks who the page acts as (demo by default; admin on the admin page).
 */

import { createClient, SafelightError, type SafelightClient } from '@safelight/client';

interface StackConfig {
  apiUrl: string | null;
  wsUrl: string | null;
  tokenUrl: string;
  /** The OAuth scope that grants the admin routes (the template's `AdminScope`). */
  adminScope?: string;
}

export interface Session {
  client: SafelightClient;
  /** Who the page acts as. */
  sub: string;
  name: string;
  admin: boolean;
}

interface TokenAnswer {
  token: string;
  sub: string;
  expires_at: number;
  claims: { name?: string; scope?: string };
}

/** Reads the page's identity choice: `?user=` (a fixed dev user) or `?sub=` (anyone). */
function identityParams(defaultUser: string): URLSearchParams {
  const page = new URLSearchParams(location.search);
  const q = new URLSearchParams({ format: 'json' });
  const sub = page.get('sub');
  if (sub) q.set('sub', sub);
  else q.set('user', page.get('user') ?? defaultUser);
  return q;
}

export async function startSession(defaultUser: 'demo' | 'admin'): Promise<Session> {
  const cfgRes = await fetch('/config.json', { cache: 'no-store' });
  if (!cfgRes.ok) throw new SafelightError('no_config', `could not read /config.json (${cfgRes.status})`, cfgRes.status);
  const cfg = (await cfgRes.json()) as StackConfig;
  if (!cfg.apiUrl || !cfg.wsUrl) {
    throw new SafelightError('no_stack', 'the local stack is not deployed yet: run `make dev` and reload');
  }
  const params = identityParams(defaultUser);
  let current: TokenAnswer | null = null;
  const fetchToken = async (): Promise<TokenAnswer> => {
    const res = await fetch(`${cfg.tokenUrl}?${params}`, { cache: 'no-store' });
    const body = (await res.json()) as TokenAnswer | { error: { code: string; message: string } };
    if (!res.ok || 'error' in body) {
      const err = 'error' in body ? body.error : { code: 'token_failed', message: `token endpoint answered ${res.status}` };
      throw new SafelightError(err.code, err.message, res.status);
    }
    return body;
  };
  current = await fetchToken();
  const getToken = async ({ fresh }: { fresh: boolean }) => {
    const stale = !current || current.expires_at - 60 <= Date.now() / 1000;
    if (fresh || stale) current = await fetchToken();
    return current!.token;
  };
  const client = createClient({ apiUrl: cfg.apiUrl, wsUrl: cfg.wsUrl, getToken, concurrency: 3, adminScope: cfg.adminScope });
  return {
    client,
    sub: current.sub,
    name: current.claims.name ?? current.sub,
    // Admin is an OAuth scope in the space-separated `scope` claim; groups grant nothing.
    admin: (current.claims.scope ?? '').split(' ').includes(cfg.adminScope ?? 'safelight/admin'),
  };
}
