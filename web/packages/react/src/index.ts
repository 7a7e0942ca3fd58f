/**
 * `@safelight/react`: React 19 hooks and components on top of `@safelight/client`.
 *
 * ```tsx
 * <SafelightProvider client={createClient({ apiUrl, wsUrl, getToken })}>
 *   <Gallery />   // useImages(), useProcessingUpdates(), useUpload(), <ImageProcessingStatus/>
 * </SafelightProvider>
 * ```
 */
export { SafelightProvider, useGalleryStore, useQueryCache, useSafelightClient } from './context.js';
export { useImageFallback } from './use-image-fallback.js';
export type { ImageFallback, ImageFallbackOptions } from './use-image-fallback.js';
export { useImagePicture } from './use-image-picture.js';
export type { PictureImage } from './use-image-picture.js';
export { Picture } from './Picture.js';
export type { PictureProps } from './Picture.js';
export { ResponsiveImage } from './ResponsiveImage.js';
export type { ResponsiveImageProps } from './ResponsiveImage.js';
export { useImages } from './use-images.js';
export type { Images } from './use-images.js';
export { useProcessingUpdates } from './use-processing-updates.js';
export type { ProcessingUpdates } from './use-processing-updates.js';
export { useRetryProcessing } from './use-retry-processing.js';
export { useUpload } from './use-upload.js';
export type { UploadEntry } from './use-upload.js';
export { useQuery } from './use-query.js';
export type { QueryResult } from './use-query.js';
export { useMutation } from './use-mutation.js';
export type { Mutation, MutationOptions, MutationOutcome } from './use-mutation.js';
export { QueryCache } from './query-cache.js';
export type { FetchOptions, Fetcher, QuerySnapshot, QueryStatus } from './query-cache.js';
export { ImageProcessingStatus } from './ImageProcessingStatus.js';
export type { ImageProcessingStatusProps } from './ImageProcessingStatus.js';
export { ProcessingQueueDashboard } from './ProcessingQueueDashboard.js';
export type { ProcessingQueueDashboardProps } from './ProcessingQueueDashboard.js';
