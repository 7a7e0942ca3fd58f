import { describe, expect, it, vi } from 'vitest';
import { MAX_HASH_BYTES, toHex, webCryptoHasher, workerMain, type HashAnswer, type WorkerScope } from '@safelight/client';

const ABC = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';
const EMPTY = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

describe('webCryptoHasher', () => {
  it('answers the lower-case hex SHA-256 of the file (FIPS 180-2 vectors)', async () => {
    const hash = webCryptoHasher();
    expect(await hash(new Blob(['abc']))).toBe(ABC);
    expect(await hash(new Blob([]))).toBe(EMPTY);
  });

  it('does not hash a file over the cap (it uploads without sha256)', async () => {
    const huge = { size: MAX_HASH_BYTES + 1, arrayBuffer: vi.fn() } as unknown as Blob;
    expect(await webCryptoHasher()(huge)).toBeNull();
    expect(huge.arrayBuffer).not.toHaveBeenCalled();
  });
});

describe("the hashing worker's program", () => {
  /** Runs [workerMain] in a fake scope with this process's Web Crypto. */
  function worker() {
    const answers: HashAnswer[] = [];
    const scope: WorkerScope = { onmessage: null, postMessage: (a) => answers.push(a), crypto: globalThis.crypto };
    workerMain(scope);
    return { scope, answers };
  }

  it('answers each request with its id and the hex digest', async () => {
    const { scope, answers } = worker();
    scope.onmessage!({ data: { id: 7, file: new Blob(['abc']) } });
    scope.onmessage!({ data: { id: 8, file: new Blob([]) } });
    await vi.waitFor(() => expect(answers).toHaveLength(2));
    expect(answers).toEqual(expect.arrayContaining([{ id: 7, hex: ABC }, { id: 8, hex: EMPTY }]));
  });

  it('answers an error for a file it cannot read', async () => {
    const { scope, answers } = worker();
    const unreadable = { arrayBuffer: () => Promise.reject(new Error('NotReadableError')) } as unknown as Blob;
    scope.onmessage!({ data: { id: 1, file: unreadable } });
    await vi.waitFor(() => expect(answers).toHaveLength(1));
    expect(answers[0]).toEqual({ id: 1, error: 'Error: NotReadableError' });
  });

  it('references nothing outside itself, so its source text runs alone in the worker', async () => {
    const answers: HashAnswer[] = [];
    const scope: WorkerScope = { onmessage: null, postMessage: (a) => answers.push(a), crypto: globalThis.crypto };
    // The same text the worker is made from, evaluated with nothing but the scope in reach.
    new Function('self', `(${String(workerMain)})(self);`)(scope);
    scope.onmessage!({ data: { id: 2, file: new Blob(['abc']) } });
    await vi.waitFor(() => expect(answers).toEqual([{ id: 2, hex: ABC }]));
  });
});

describe('toHex', () => {
  it('pads each byte to two digits', () => {
    expect(toHex(new Uint8Array([0, 1, 0xab, 0xff]).buffer)).toBe('0001abff');
  });
});
