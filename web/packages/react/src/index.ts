/**
 * `@safelight/react`: React 19 hooks and components on top of `@safelight/client`.
 *
 * ```tsx
 * <SafelightProvider client={createClient({ apiUrl, wsUrl, getToken })}>
 *   <Gallery />   // useImages(), useProcessingUpdates(), useUpload(), <ImageProcessingStatus/>
 * </SafelightProvider>
 * ```
 */
export { SafelightProvider, useGalleryStore, useSafelightClient } from './context.js';
export { useImageFallback, useImages, useProcessingUpdates, useRetryProcessing, useUpload } from './hooks.js';
export type { ProcessingUpdates, UploadEntry } from './hooks.js';
export { ImageProcessingStatus } from './ImageProcessingStatus.js';
export type { ImageProcessingStatusProps } from './ImageProcessingStatus.js';
export { ProcessingQueueDashboard } from './ProcessingQueueDashboard.js';
export type { ProcessingQueueDashboardProps } from './ProcessingQueueDashboard.js';
