import { describe, expect, it } from 'vitest';
import { createClient } from '@safelight/client';

/** An unsigned JWT carrying `claims` (the client only reads the payload, the API verifies). */
const jwt = (claims: object) =>
  `e30.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.sig`;

/** A fetch that fails the way a browser reports a response without CORS headers. */
const blocked: typeof fetch = async () => {
  throw new TypeError('Failed to fetch');
};

const client = (claims: object, adminScope?: string) =>
  createClient({ apiUrl: 'https://api.test', wsUrl: 'wss://ws.test', getToken: () => jwt(claims), fetch: blocked, adminScope });

describe('an admin call the gateway refused', () => {
  it('is forbidden when the token has no admin scope (the gateway refusal a browser cannot read)', async () => {
    await expect(client({ scope: 'openid' }).admin.processingQueue()).rejects.toMatchObject({ code: 'forbidden', status: 403 });
    await expect(client({ scope: 'openid', groups: ['admin'] }).admin.resetCircuit('thumbnail')).rejects.toMatchObject({ code: 'forbidden' });
  });

  it('stays a network failure for an admin token', async () => {
    await expect(client({ scope: 'openid safelight/admin' }).admin.processingQueue()).rejects.toMatchObject({ code: 'network' });
    await expect(client({ scp: ['ops/admin'] }, 'ops/admin').admin.retryAllFailed()).rejects.toMatchObject({ code: 'network' });
  });
});
