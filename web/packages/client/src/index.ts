/**
 * `@safelight/client`: a framework-free browser client for Safelight.
 *
 * ```ts
 * const client = createClient({ apiUrl, wsUrl, getToken: () => myToken() });
 * const off = client.subscribe({ notice: (n) => console.log(n.type, n.image_id) });
 * await client.upload(file, { onProgress: (p) => bar.value = p.fraction });
 * ```
 */
export { createClient, sharedRealtime, SafelightClient } from './client.js';
export type { ClientOptions, UploadOptions, UploadResult } from './client.js';
export { SafelightError, asSafelightError, errorFromBody, parseRetryAfter } from './errors.js';
export { Http } from './http.js';
export type { HttpOptions, TokenProvider } from './http.js';
export { Realtime, backoffDelay, CLOSE_SILENT } from './realtime.js';
export type { ConnectionState, RealtimeListener, RealtimeOptions, SocketFactory, SocketLike, Timers } from './realtime.js';
export { Limiter, contentTypeOf, sendToStorage } from './upload.js';
export type { StorageOutcome, UploadMethod, UploadProgress, XhrLike } from './upload.js';
export { imageCandidates, imageUrl, placeholderUrl } from './images.js';
export type { DerivativeSource, ImageChoice, ImageSources } from './images.js';
export { derivativeFormat, hasDerivativeUrls, responsiveSet } from './responsive.js';
export type { PictureSource, ResponsiveSet } from './responsive.js';
export { RENEW_FRACTION, sourcesRenewAt, urlExpired, urlExpiry, urlRenewAt } from './expiry.js';
export { SNIFF_BYTES, browserHeicConverter, heicAsJpeg, isHeic, isHeicBytes, jpegName } from './heic.js';
export type { HeicConverter } from './heic.js';
export { MAX_HASH_BYTES, WORKER_FROM_BYTES, toHex, webCryptoHasher, workerMain } from './hash.js';
export type { FileHasher, HashAnswer, HashRequest, WorkerScope } from './hash.js';
export { GalleryStore, applyNotice, fromSummary, mergeView, newImage, retryableKind, withSummaryUrls } from './gallery.js';
export type { ImageState } from './gallery.js';
export type * from './types.js';
