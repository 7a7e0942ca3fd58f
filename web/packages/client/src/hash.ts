/**
 * SHA-256 of a file before upload, with Web Crypto, for the API's duplicate check and the
 * storage's signed checksum.
 *
 * SubtleCrypto has no streaming digest, so a file is hashed whole: read into one ArrayBuffer and
 * passed to `crypto.subtle.digest`. Files of `WORKER_FROM_BYTES` and more are read and hashed in
 * a Worker (one, made from an inline script, so no bundler set-up is needed), one file at a time:
 * the main thread never holds their bytes, and the memory cost is one copy of one file (at most
 * the API's upload limit, 25 MiB by default) in the worker while it is hashed. Files over
 * `MAX_HASH_BYTES` are not hashed (they upload without `sha256`, so without duplicate detection),
 * which bounds that copy whatever limit a deployment sets.
 */

/** Hex SHA-256 of a file; `null` when it cannot be computed here (then the upload goes without). */
export type FileHasher = (file: Blob) => Promise<string | null>;

/** From this size on, files are hashed in the worker. */
export const WORKER_FROM_BYTES = 1024 * 1024;
/** Larger files are not hashed at all. */
export const MAX_HASH_BYTES = 256 * 1024 * 1024;

/** Lower-case hex of a digest. */
export function toHex(digest: ArrayBuffer): string {
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** What the worker hears and answers. */
export interface HashRequest {
  id: number;
  file: Blob;
}
export type HashAnswer = { id: number; hex: string } | { id: number; error: string };

/** The scope a worker runs in, as much of it as [workerMain] uses. */
export interface WorkerScope {
  onmessage: ((ev: { data: HashRequest }) => void) | null;
  postMessage(answer: HashAnswer): void;
  crypto: { subtle: { digest(algorithm: string, data: ArrayBuffer): Promise<ArrayBuffer> } };
}

/**
 * The worker's whole program. It runs from its source text (`String(workerMain)`), so it must
 * reference nothing outside itself.
 */
export function workerMain(scope: WorkerScope): void {
  scope.onmessage = (ev) => {
    const { id, file } = ev.data;
    file
      .arrayBuffer()
      .then((bytes) => scope.crypto.subtle.digest('SHA-256', bytes))
      .then(
        (digest) => scope.postMessage({ id, hex: [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('') }),
        (e: unknown) => scope.postMessage({ id, error: String(e) }),
      );
  };
}

/** The worker side of the hasher: one worker, made on first use, answering by request id. */
class HashWorker {
  private worker: Worker | null = null;
  private serial = 0;
  private readonly waiting = new Map<number, (hex: string | null) => void>();

  hash(file: Blob): Promise<string | null> {
    const worker = this.start();
    if (!worker) return Promise.resolve(null);
    const id = ++this.serial;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      worker.postMessage({ id, file } satisfies HashRequest);
    });
  }

  private start(): Worker | null {
    if (this.worker) return this.worker;
    try {
      const source = `(${String(workerMain)})(self);`;
      const url = URL.createObjectURL(new Blob([source], { type: 'text/javascript' }));
      this.worker = new Worker(url);
      URL.revokeObjectURL(url);
    } catch {
      return null; // no Worker, or a content security policy without `worker-src blob:`
    }
    this.worker.onmessage = (ev: MessageEvent<HashAnswer>) => {
      const done = this.waiting.get(ev.data.id);
      this.waiting.delete(ev.data.id);
      done?.('hex' in ev.data ? ev.data.hex : null);
    };
    this.worker.onerror = () => {
      for (const done of this.waiting.values()) done(null);
      this.waiting.clear();
      this.worker?.terminate();
      this.worker = null;
    };
    return this.worker;
  }
}

/** SHA-256 on this thread (small files, or where there is no Worker). */
async function hashHere(file: Blob): Promise<string | null> {
  return toHex(await globalThis.crypto.subtle.digest('SHA-256', await file.arrayBuffer()));
}

/**
 * The default hasher: small files here, large ones in the worker (falling back to here when no
 * worker can start); `null` without Web Crypto (a page served over plain HTTP) or over the cap.
 */
export function webCryptoHasher(): FileHasher {
  const worker = new HashWorker();
  return async (file) => {
    if (!globalThis.crypto?.subtle || file.size > MAX_HASH_BYTES) return null;
    try {
      if (file.size >= WORKER_FROM_BYTES && typeof Worker !== 'undefined') {
        const hex = await worker.hash(file);
        if (hex) return hex;
      }
      return await hashHere(file);
    } catch {
      return null;
    }
  };
}
